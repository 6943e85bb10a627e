"""Property-based tests of the HTTP API from its own OpenAPI document (schemathesis, in
process against the ASGI app over the real fleet): no input makes it answer 5xx, and every
answer fits the document (status codes and bodies)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error, response_schema_conformance, status_code_conformance

from tests.web.conftest import WRITE_TOKEN, load


@pytest.fixture(scope="module")
def web_schema(tmp_path_factory):
    # its own fleet: the write route may be hit with a right guess of nothing, but keep the shared one pristine
    from tests.web.fleet import fill
    from vulnwatch.web.app import create_app

    d = tmp_path_factory.mktemp("fleet-schemathesis")
    fleet = fill(d, f"{{path: {d / 'state.db'}}}")
    app = create_app(load(fleet, web=f"web: {{write_token: {WRITE_TOKEN}}}"))
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    app.state.store.close()


schema = schemathesis.pytest.from_fixture("web_schema")


@schema.parametrize()
@settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
def test_api_never_fails_and_fits_its_document(case):
    response = case.call()
    case.validate_response(response, checks=(not_a_server_error, status_code_conformance,
                                             response_schema_conformance))
