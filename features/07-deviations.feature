Feature: Deviations from the workshop
  Where the workshop as written cannot work on a current cluster, the suite departs from it in
  one declared place (src/deviations.rs, README "Deviations from the workshop") and says so at
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
