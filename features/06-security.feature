@istio @D-istio-version
Feature: Secure the traffic
  Sidecars talk to each other over mutual TLS. A legacy client without a sidecar can still call
  in plaintext until STRICT mTLS is required. Authorization policies then allow only the calls
  the application makes.

  Background:
    Given Istio is installed
    And the namespace istioinaction
    And services-a.yaml, services-b.yaml, services-c-v1.yaml and services-c-v2.yaml are applied
    And sidecars are injected in istioinaction
    And service-c has no DestinationRule or VirtualService
    And istioinaction has no PeerAuthentication or AuthorizationPolicy
    And service-a-gateway.yaml and service-a-route.yaml are applied

  @C17 @capture @D-ingress-address @D-capture-command
  Scenario: Traffic between meshed services is encrypted
    When I capture the traffic into service-c-v1's pod on port 8080 while requesting / through the ingress gateway
      """
      kubectl -n istioinaction exec deploy/service-a -c istio-proxy -- sudo tcpdump -l --immediate-mode -vv -s 0 '(((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)'
      """
    Then the capture holds traffic but no plaintext HTTP
    And service-c-v1's istio-proxy reports the requests from service-a with connection_security_policy mutual_tls

  @C18 @capture @D-legacy-image @D-capture-command
  Scenario: A legacy client without a sidecar can still call service-a, in plaintext
    Given the legacy client runs in the namespace default
    When I capture the traffic into service-a's pod on port 8080 while the legacy client calls http://service-a.istioinaction.svc.cluster.local
      """
      kubectl -n istioinaction exec deploy/service-a -c istio-proxy -- sudo tcpdump -l --immediate-mode -vv -s 0 '(((ip[2:2] - ((ip[0]&0xf)<<2)) - ((tcp[12]&0xf0)>>2)) != 0)'
      kubectl -n default exec legacy -- curl -s http://service-a.istioinaction.svc.cluster.local
      """
    Then the legacy client's call answers 200
    And the capture shows service-a's response in plaintext

  @C19 @D-legacy-image
  Scenario: With STRICT mTLS the legacy client is rejected
    Given the legacy client runs in the namespace default
    When I apply peer-auth-strict.yaml
    Then the legacy client's call to http://service-a.istioinaction.svc.cluster.local fails with curl exit code 56, the connection reset

  @C20
  Scenario: Before any authorization policy, service-b may call service-a and service-c
    Then service-b's call to http://service-a answers 200
    And service-b's call to http://service-c answers 200

  @C21 @D-ingress-address
  Scenario: With the three authorization policies only the application's own calls are allowed
    When I apply ingress-to-service-a-auth-policy.yaml, service-a-to-b-auth-policy.yaml and service-a-to-c-auth-policy.yaml
    And I request / through the ingress gateway
    Then some responses are 500 and some are 200
    And service-c's call to http://service-a is denied with 403 "RBAC: access denied"
    And service-b's call to http://service-c is denied with 403 "RBAC: access denied"

  @C22 @kiali @D-legacy-image
  Scenario: Kiali shows the legacy client's traffic without mTLS
    Given the addons are installed
    And the legacy client runs in the namespace default
    And the legacy client has called http://service-a.istioinaction.svc.cluster.local
    When I fetch Kiali's versioned-app graph of istioinaction
    Then the graph's edge from unknown to service-a is not mutual TLS
