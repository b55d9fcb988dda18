@istio @D-istio-version
Feature: Manage the traffic to service-c
  A DestinationRule names the two versions of service-c as subsets. A VirtualService then sends
  every request to v1, and can mirror a copy of each request to v2, whose answers are discarded.

  Background:
    Given Istio is installed
    And the namespace istioinaction
    And services-a.yaml, services-b.yaml, services-c-v1.yaml and services-c-v2.yaml are applied
    And sidecars are injected in istioinaction
    And istioinaction has no PeerAuthentication or AuthorizationPolicy
    And service-a-gateway.yaml and service-a-route.yaml are applied

  @C15 @D-ingress-address
  Scenario: With the DestinationRule and the route to v1, every request succeeds
    Given service-c has no DestinationRule or VirtualService
    When I apply service-c-dr.yaml and service-c-route.yaml
    And I request / through the ingress gateway
    Then every response is 200
    And every response shows the calls to http://service-b and http://service-c, each answering 200

  @C16 @D-ingress-address
  Scenario: With mirroring, every request still succeeds and v2 still receives traffic
    Given service-c has no DestinationRule or VirtualService
    When I apply service-c-dr.yaml and service-c-mirror.yaml
    And I request / through the ingress gateway
    Then every response is 200
    And service-c v2 receives a mirrored copy of every request
