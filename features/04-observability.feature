@istio @D-istio-version
Feature: Observe the mesh
  Every sidecar writes an access log and counts requests in istio_requests_total. The addons
  (Prometheus, Grafana, Kiali) collect and show those numbers.

  Background:
    Given Istio is installed
    And the namespace istioinaction
    And services-a.yaml, services-b.yaml, services-c-v1.yaml and services-c-v2.yaml are applied
    And sidecars are injected in istioinaction
    And service-c has no DestinationRule or VirtualService
    And istioinaction has no PeerAuthentication or AuthorizationPolicy
    And service-a-gateway.yaml and service-a-route.yaml are applied

  @C10 @D-ingress-address
  Scenario: service-a's sidecar logs the failed requests
    Given requests through the ingress gateway have succeeded with 200 and failed with 500
    When I read the logs of service-a's istio-proxy
      """
      kubectl logs deploy/service-a -c istio-proxy
      """
    Then an access log entry of service-a's istio-proxy has response code 500

  @C11 @D-ingress-address
  Scenario: service-a's sidecar counts the 200s and the 500s
    Given requests through the ingress gateway have succeeded with 200 and failed with 500
    When I read the metrics of service-a's istio-proxy on port 15020
      """
      kubectl exec deploy/service-a -c istio-proxy -- curl -s localhost:15020/stats/prometheus
      """
    Then istio_requests_total has a series with response_code 200
    And istio_requests_total has a series with response_code 500

  @C12 @prometheus
  Scenario: Prometheus comes up
    When I install the addons
      """
      kubectl apply -f istio-RELEASE/samples/addons
      """
    Then prometheus is Ready in istio-system

  @C12 @grafana @kiali
  Scenario: Grafana and Kiali come up
    When I install the addons
    Then grafana is Ready in istio-system
    And kiali is Ready in istio-system

  @C13 @prometheus @D-ingress-address
  Scenario: Prometheus singles out service-c as the failing destination
    Given the addons are installed
    And requests through the ingress gateway have succeeded with 200 and failed with 500
    Then Prometheus shows a success rate below 100% from service-a to service-c
    And Prometheus shows a success rate of 100% from service-a to service-b

  @C13 @grafana
  Scenario: Grafana offers the Istio Workload Dashboard
    Given the addons are installed
    Then Grafana has a dashboard titled "Istio Workload Dashboard"
    And its row "Outbound Services" has the panel "Outgoing Success Rate (non-5xx responses) By Destination"

  @C14 @kiali @D-ingress-address
  Scenario: Kiali's versioned-app graph shows v2 of service-c failing and v1 healthy
    Given the addons are installed
    And requests through the ingress gateway have succeeded with 200 and failed with 500
    When I fetch Kiali's versioned-app graph of istioinaction
    Then the graph shows requests to service-c v2 failing
    And the graph shows requests to service-c v1 all succeeding
