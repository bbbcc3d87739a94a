"""``/metrics``: what happened across 4 gunicorn workers, behind the host API key, with no personal data."""
import requests
from prometheus_client.parser import text_string_to_metric_families

from tvwidget import metrics

from .conftest import HOST_API_KEY
from .processes import Admin, Agent, together

AUTH = {"Authorization": f"Bearer {HOST_API_KEY}"}


def scrape(base: str) -> dict:
    """Return ``{(sample name, frozenset(labels)): value}`` read from ``/metrics``."""
    response = requests.get(base + "/metrics", headers=AUTH, timeout=10)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return samples, response.text


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_metrics_add_up_every_worker_after_real_plays(gunicorn, teamviewer, smtp):
    base = gunicorn
    assert requests.get(base + "/metrics", timeout=10).status_code == 401
    assert requests.get(base + "/metrics", headers={"Authorization": "Bearer wrong"}, timeout=10).status_code == 401

    agents = [Agent(base, ticket=f"M-{n}") for n in range(8)]
    together([(0, lambda agent=agent: agent.post("play")) for agent in agents])
    assert {agent.state() for agent in agents} == {"open"}
    codes = [agent.code() for agent in agents]
    polls = [(0, lambda agent=agent, code=code: agent.poll(code)) for agent, code in zip(agents, codes, strict=True)]
    together(polls * 2)
    together([(0, lambda agent=agent: agent.post("stop")) for agent in agents])
    assert {agent.state() for agent in agents} == {"idle"}
    assert smtp.wait_for(8, timeout=20) and len(smtp.messages) == 8
    Admin(base).revoke()
    refused = [Agent(base, ticket=f"R-{n}") for n in range(3)]
    together([(0, lambda agent=agent: agent.post("play")) for agent in refused])

    # Every scrape lands on some worker; each sees the same totals, whatever worker served each request.
    scrapes = [scrape(base) for _ in range(8)]
    samples, text = scrapes[0]
    for other, _ in scrapes[1:]:
        assert {k: v for k, v in other.items() if k[0].startswith("tvwidget_")} == \
            {k: v for k, v in samples.items() if k[0].startswith("tvwidget_")}

    assert value(samples, "tvwidget_cases_total", event="opened") == 8
    assert value(samples, "tvwidget_cases_total", event="closed") == 8
    assert value(samples, "tvwidget_cases_total", event="expired") == 0
    assert value(samples, "tvwidget_plays_refused_total", cause="not_connected") == 3
    assert value(samples, "tvwidget_teamviewer_requests_total", endpoint="/sessions", method="POST", outcome="ok") \
        == teamviewer.session_calls("POST") == 8
    assert value(samples, "tvwidget_teamviewer_requests_total", endpoint="/sessions/{code}", method="PUT",
                 outcome="ok") == teamviewer.session_calls("PUT") == 8
    assert value(samples, "tvwidget_teamviewer_request_seconds_count", endpoint="/sessions", method="POST") == 8
    # Each case's status was polled twice: one poll per case may ask TeamViewer, the others read the cache.
    hits = value(samples, "tvwidget_status_cache_total", result="hit")
    misses = value(samples, "tvwidget_status_cache_total", result="miss")
    assert hits + misses == 16
    assert misses == teamviewer.session_calls("GET") and 1 <= misses <= 8
    assert value(samples, "tvwidget_teamviewer_requests_total", endpoint="/sessions/{code}", method="GET",
                 outcome="ok") == misses
    assert value(samples, "tvwidget_invitations", status="sent") == 8
    assert value(samples, "tvwidget_invitations_backlog") == 0

    # No session code, ticket, name, address or key in any label or value.
    for secret_or_personal in [*codes, "M-0", "R-0", "john.doe", "John Doe", "@", HOST_API_KEY]:
        assert secret_or_personal not in text


def test_endpoint_templates_hold_no_ids():
    assert metrics.endpoint("/sessions/s123-456-789") == "/sessions/{code}"
    assert metrics.endpoint("/sessions") == "/sessions"
    assert metrics.endpoint("/reports/connections") == "/reports/connections"
    assert metrics.endpoint("/users/u1234567") == "/users/{id}"
    assert metrics.endpoint("/groups/g425123356/share_group") == "/groups/{id}/share_group"


def test_metrics_need_the_host_api_key_in_process(client):
    assert client.get("/metrics").status_code == 401
    response = client.get("/metrics", headers=AUTH)
    assert response.status_code == 200
    assert "tvwidget_cases_total{event=\"opened\"} 0.0" in response.text
