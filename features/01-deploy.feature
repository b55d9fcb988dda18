Feature: Deploy the services
  The workshop starts without Istio: three small HTTP services in the namespace istioinaction.
  service-a calls service-b and then service-c, and answers with JSON that shows the whole chain.

  Background:
    Given the namespace istioinaction
    And no sidecars are injected in istioinaction

  @C01
  Scenario: The services become Ready and service-a answers with the whole chain
    Given service-c v2 is not deployed
    When I apply services-a.yaml, services-b.yaml and services-c-v1.yaml
      """
      kubectl apply -f services-a.yaml -f services-b.yaml -f services-c-v1.yaml
      kubectl wait pods --for condition=Ready --all
      """
    Then every pod in istioinaction is Ready
    When I request / through a port-forward to deploy/service-a on port 8080
      """
      kubectl port-forward deploy/service-a 8080
      curl localhost:8080
      """
    Then every response is 200
    And every response comes from service-a
    And every response shows the calls to http://service-b and http://service-c, each answering 200

  @C02
  Scenario: service-a serves its web UI at /ui
    Given services-a.yaml, services-b.yaml and services-c-v1.yaml are applied
    When I open /ui in a browser through a port-forward to deploy/service-a on port 8080
      """
      kubectl port-forward deploy/service-a 8080
      open http://localhost:8080/ui
      """
    Then every response is 200
    And every response is an HTML page

  @C03
  Scenario: With service-c v2 deployed, some requests fail with 500 and some succeed
    Given services-a.yaml, services-b.yaml and services-c-v1.yaml are applied
    When I apply services-c-v2.yaml
    And I request / through a port-forward to deploy/service-a on port 8080
    Then some responses are 500 and some are 200
    And every 500 comes from service-a, whose call to http://service-c answered 500

  @C04
  Scenario: The services' logs carry no error information
    Given services-a.yaml, services-b.yaml, services-c-v1.yaml and services-c-v2.yaml are applied
    And requests through a port-forward to deploy/service-a on port 8080 have succeeded with 200 and failed with 500
    When I read the logs of service-a, service-b, service-c-v1 and service-c-v2
      """
      kubectl logs deploy/service-c-v2
      """
    Then every log shows the requests its service handled
    And no log line mentions an error
