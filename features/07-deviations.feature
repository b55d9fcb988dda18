Feature: Deviations from the workshop
  Where the workshop as written cannot work on a current cluster, the suite departs from it in
  one declared place (crates/claims/src/deviations.rs, README "Deviations from the workshop") and says so at
  the start of every run and in every report. Each scenario here tries the workshop's original
  and expects it to fail for the reason the deviation states; when the original works, the
  scenario fails: the deviation is no longer needed.

  @deviation @D-legacy-image
  Scenario: The workshop's legacy client image is still refused by the container runtime
    Then the workshop's legacy client, run as written in a scratch namespace, fails to pull its image because it is Docker schema 1
      """
      kubectl create namespace happy-deviation-check
      kubectl -n happy-deviation-check run legacy --image=radial/busyboxplus:curl -- tail -f /dev/null
      kubectl -n happy-deviation-check describe pod legacy   # Failed to pull image … no longer supported
      kubectl delete namespace happy-deviation-check
      """

  @deviation @D-ingress-address @istio
  Scenario: The workshop's ingress address still does not reach the ingress gateway
    Given Istio is installed
    Then the workshop's ingress address, the gateway Service's LoadBalancer IP, does not reach the gateway from here
      """
      export ISTIO_INGRESS_GW_IP=$(kubectl get svc -n istio-system istio-ingressgateway -ojsonpath='{.status.loadBalancer.ingress[*].ip}')
      curl -s $ISTIO_INGRESS_GW_IP
      """
