"""The REST API checked against its own OpenAPI document by schemathesis, in-process over
WSGI, with a bounded number of generated requests per operation."""

from __future__ import annotations

import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.specs.openapi.checks import positive_data_acceptance

from tests.conftest import make_device
from tests.web.conftest import bearer


def test_api_conforms_to_openapi(app, runtime, sysadmin, alice):
    make_device(runtime)
    headers = bearer(runtime, sysadmin)
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 18

    for operation in operations:
        @given(case=operation.as_strategy())
        @settings(max_examples=12, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def check(case):
            # The schema cannot express every rule (a valid MAC, a 4-8 digit PIN), so
            # schema-valid input may still be refused: "answered right" is what is checked.
            case.call_and_validate(headers=headers,
                                   excluded_checks=[positive_data_acceptance])

        check()


def test_openapi_document_lists_every_api_route(app):
    doc = app.test_client().get("/api/v1/openapi.json").json
    documented = {(path, method.upper()) for path, item in doc["paths"].items()
                  for method in item if method != "parameters"}
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("api."):
            path = rule.rule.removeprefix("/api/v1")
            for arg in rule.arguments:
                path = path.replace(f"<int:{arg}>", "{" + arg + "}")
            routed |= {(path, m) for m in rule.methods - {"HEAD", "OPTIONS"}}
    assert routed == documented
