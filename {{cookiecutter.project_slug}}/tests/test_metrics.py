"""GET /metrics and the HTTP metrics: what a Prometheus scraping the service reads.

The metrics live in prometheus-client's process-wide registry, shared by
every app these tests build: each test compares figures before and after.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import httpx2
import pytest
from fastapi.testclient import TestClient

import {{ cookiecutter.package_name }} as package
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.metrics import PREFIX
from {{ cookiecutter.package_name }}.settings import Settings

from .processes import child, until, workers_serving
from .scrape import Key, label_values, moved, samples, value


def scrape(client: TestClient) -> dict[Key, float]:
    response = client.get("/metrics")
    assert response.status_code == 200, response.text
    return samples(response.text)


def test_metrics_are_prometheus_text_named_after_the_package() -> None:
    with TestClient(create_app(Settings(_env_file=None))) as client:
        client.get("/health")
        response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    figures = samples(response.text)
    names = {name for name, _ in figures}
    assert f"{PREFIX}_http_requests_total" in names
    # Counters end in _total, durations are in seconds: Prometheus's conventions.
    assert f"{PREFIX}_http_request_duration_seconds_count" in names


def test_requests_are_counted_by_route_template_method_and_status() -> None:
    with TestClient(create_app(Settings(_env_file=None))) as client:
        before = scrape(client)
        for _ in range(3):
            assert client.get("/health").status_code == 200
        assert client.get("/no/such/path").status_code == 404
        assert client.post("/health").status_code == 405
        after = scrape(client)

    assert (
        moved(before, after, "http_requests_total", method="GET", route="/health", status="200")
        == 3
    )
    assert (
        moved(before, after, "http_requests_total", method="GET", route="unmatched", status="404")
        == 1
    )
    # Routed to /health by path, refused by method: still that route's.
    assert (
        moved(before, after, "http_requests_total", method="POST", route="/health", status="405")
        == 1
    )
    assert (
        moved(before, after, "http_request_duration_seconds_count", method="GET", route="/health")
        == 3
    )
    assert (
        moved(before, after, "http_request_duration_seconds_sum", method="GET", route="/health") > 0
    )


def test_answers_from_fastapis_own_outer_layers_are_counted_too() -> None:
    # FastAPI sends an oversized body's 413 and an unhandled exception's 500 from layers
    # outside every middleware the app adds; HEAD is counted as what the client sent.
    app = create_app(Settings(_env_file=None, max_body_size=100))

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    with TestClient(app, raise_server_exceptions=False) as client:
        before = scrape(client)
        assert client.post("/health", content=b"x" * 101).status_code == 413
        assert client.get("/boom").status_code == 500
        assert client.head("/health").status_code == 200
        after = scrape(client)

    assert (
        moved(before, after, "http_requests_total", method="POST", route="/health", status="413")
        == 1
    )
    assert (
        moved(before, after, "http_requests_total", method="GET", route="/boom", status="500") == 1
    )
    assert (
        moved(before, after, "http_requests_total", method="HEAD", route="/health", status="200")
        == 1
    )


def test_labels_stay_few_whatever_paths_and_methods_clients_send() -> None:
    with TestClient(create_app(Settings(_env_file=None))) as client:
        for _ in range(20):
            client.get(f"/{uuid.uuid4().hex}")
            client.request(uuid.uuid4().hex[:8].upper(), "/health")
        figures = scrape(client)
    routes = label_values(figures, "http_requests_total", "route")
    assert "unmatched" in routes
    assert all(route == "unmatched" or route.startswith("/") for route in routes)
    assert not any(len(route) == 33 for route in routes), "a random path became a label"
    methods = label_values(figures, "http_requests_total", "method")
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}


def test_metrics_enabled_false_serves_no_metrics_and_measures_nothing() -> None:
    with TestClient(create_app(Settings(_env_file=None))) as measuring:
        before = scrape(measuring)
        with TestClient(create_app(Settings(_env_file=None, metrics_enabled=False))) as client:
            assert client.get("/metrics").status_code == 404
            assert client.get("/health").status_code == 200
        after = scrape(measuring)
    labels = {"method": "GET", "route": "/health", "status": "200"}
    assert value(after, "http_requests_total", **labels) == value(
        before, "http_requests_total", **labels
    )


def test_metrics_stay_out_of_the_openapi_schema() -> None:
    with TestClient(create_app(Settings(_env_file=None))) as client:
        schema = client.get("/openapi.json").json()
    assert "/metrics" not in schema["paths"]


def test_trusted_hosts_applies_to_metrics() -> None:
    settings = Settings(_env_file=None, trusted_hosts=["rt.example.com"])
    with TestClient(create_app(settings)) as client:
        assert client.get("/metrics", headers={"Host": "evil.example"}).status_code == 400
        assert client.get("/metrics", headers={"Host": "rt.example.com"}).status_code == 200


@pytest.mark.anyio
async def test_two_workers_count_every_request_between_them(tmp_path: Path) -> None:
    chosen = tmp_path / "metrics"  # chosen here to see which workers wrote counts
    chosen.mkdir()
    environment = {"WORKERS": "2", "HOST": "127.0.0.1", "PORT": "0"}
    async with child(
        tmp_path, "-m", package.__name__, PROMETHEUS_MULTIPROC_DIR=str(chosen), **environment
    ) as service:
        try:
            await workers_serving(service, 2)
            base = f"http://127.0.0.1:{service.port}"
            requests = 0
            # A new connection each: the kernel spreads them over both workers' accepts.
            while len(counted_health(chosen)) < 2:
                assert requests < 200, "every request reached the same worker"
                async with httpx2.AsyncClient() as http:
                    assert (await http.get(f"{base}/health")).status_code == 200
                requests += 1

            async def counted() -> bool:
                async with httpx2.AsyncClient() as http:
                    figures = samples((await http.get(f"{base}/metrics")).text)
                health = {"method": "GET", "route": "/health", "status": "200"}
                return value(figures, "http_requests_total", **health) == requests

            await until(counted)
        finally:
            # SIGTERM: the parent stops its workers (a SIGKILL would leave them running).
            status = await service.stop()
    assert status == 0


def counted_health(directory: Path) -> list[Path]:
    """The workers' counter files that hold a count of GET /health (the label is in the file)."""
    return [path for path in directory.glob("counter_*.db") if b'"/health"' in path.read_bytes()]


@pytest.mark.anyio
async def test_a_prometheus_multiproc_dir_that_is_no_directory_stops_python_m_in_one_line(
    tmp_path: Path,
) -> None:
    missing = tmp_path / "missing"
    async with child(
        tmp_path, "-m", package.__name__, PROMETHEUS_MULTIPROC_DIR=str(missing), WORKERS="2"
    ) as service:
        assert await service.wait_exit() == 1
    expected = f"error: PROMETHEUS_MULTIPROC_DIR: {str(missing)!r} is not a directory"
    assert service.lines == [expected]
