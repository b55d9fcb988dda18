@istio @D-istio-version
Feature: Install Istio and inject the sidecars
  istioctl installs Istio with the demo profile. Labelling the namespace makes Istio inject its
  istio-proxy sidecar into every pod created there; restarting the deployments recreates the pods.

  @C05
  Scenario: The demo profile runs istiod and the ingress gateway
    When I install Istio with the demo profile
      """
      istioctl install -y --set profile=demo --set values.global.proxy.privileged=true
      """
    Then istiod is Ready in istio-system
    And istio-ingressgateway is Ready in istio-system

  @C05 @egress-gateway
  Scenario: The demo profile's egress gateway runs beside them
    When I install Istio with the demo profile
    Then istio-egressgateway is Ready in istio-system

  @C06
  Scenario: Labelling the namespace and restarting the deployments injects the sidecars
    Given Istio is installed
    And the namespace istioinaction
    And no sidecars are injected in istioinaction
    And services-a.yaml, services-b.yaml, services-c-v1.yaml and services-c-v2.yaml are applied
    When I label the namespace istioinaction with istio-injection=enabled
      """
      kubectl label namespace istioinaction istio-injection=enabled
      """
    And I restart every deployment in istioinaction
      """
      kubectl rollout restart deploy service-a service-b service-c-v1 service-c-v2
      """
    Then every pod in istioinaction has an istio-proxy sidecar
    And every pod in istioinaction is Ready with 2/2 containers

  @C07
  Scenario: Manual injection adds the sidecar to service-a's Deployment
    Given Istio is installed
    When I inject the sidecar into services-a.yaml by hand
      """
      istioctl kube-inject -f services-a.yaml
      """
    Then the injected Deployment service-a has an istio-proxy sidecar
