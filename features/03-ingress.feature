@istio @D-istio-version
Feature: Expose service-a through the ingress gateway
  A Gateway opens port 80 of the ingress gateway, and a VirtualService routes its traffic to
  service-a. service-c v2 is still deployed, so its errors show through the gateway too.

  Background:
    Given Istio is installed
    And the namespace istioinaction
    And services-a.yaml, services-b.yaml, services-c-v1.yaml and services-c-v2.yaml are applied
    And sidecars are injected in istioinaction
    And service-c has no DestinationRule or VirtualService
    And istioinaction has no PeerAuthentication or AuthorizationPolicy

  @C08 @D-ingress-address
  Scenario: The ingress gateway routes to service-a, and the v2 errors still show
    When I apply service-a-gateway.yaml and service-a-route.yaml
    And I request / through the ingress gateway
      """
      kubectl -n istio-system port-forward svc/istio-ingressgateway 8080:80
      curl localhost:8080
      """
    Then some responses are 500 and some are 200
    And every 200 comes from service-a
    And every 500 comes from service-a, whose call to http://service-c answered 500

  @C09 @D-ingress-address
  Scenario: The UI is reachable through the ingress gateway
    Given service-a-gateway.yaml and service-a-route.yaml are applied
    When I open /ui in a browser through the ingress gateway
      """
      open "http://$ISTIO_INGRESS_GW_IP/ui"
      """
    Then every response is 200
    And every response is an HTML page
