"""The host API keeps the contract it publishes in openapi.yaml (schemathesis against the live app)."""
from pathlib import Path

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import positive_data_acceptance

from ..conftest import HOST_API_KEY
from ..live import serve

schema = schemathesis.openapi.from_path(Path(__file__).resolve().parents[2] / "openapi.yaml")
# Valid requests must get documented answers; malformed input is fuzzed on its own
# (host/test_api.py, web/test_fuzz.py), because the API deliberately ignores unknown
# query parameters, which schemathesis's negative mode counts as a failure.
schema.config.generation.update(modes=[schemathesis.GenerationMode.POSITIVE], with_security_parameters=False)


@pytest.fixture(scope="module")
def live_api(tmp_path_factory, sandbox_url):
    """One app on SQLite served over HTTP for the whole module (hypothesis runs many examples)."""
    from tvwidget import create_app
    from tvwidget.extensions import db

    path = tmp_path_factory.mktemp("openapi") / "api.db"
    app = create_app({"ENV": "development", "HOST_API_KEY": HOST_API_KEY,
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}", "TEAMVIEWER_API_URL": sandbox_url})
    with app.app_context():
        db.create_all()
    with serve(app) as base_url, requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {HOST_API_KEY}"
        yield base_url + "/api/v1", session
    with app.app_context():
        db.engine.dispose()


@schema.parametrize()
@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
def test_host_api_conforms_to_its_openapi_description(case, live_api):
    base_url, session = live_api
    # A schema-valid request may still be refused for its meaning (from after to,
    # an id in the body that differs from the URL's): 400 is documented for that.
    case.call_and_validate(base_url=base_url, session=session, excluded_checks=[positive_data_acceptance])
