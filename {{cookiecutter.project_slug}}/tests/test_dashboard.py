"""deploy/grafana/dashboard.json: a dashboard Grafana can load, built from exactly the
metric names this service exposes (every name it queries exists, every metric has a panel)."""

from __future__ import annotations

import importlib
import importlib.util
import json
import re
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.metrics import PREFIX
from {{ cookiecutter.package_name }}.settings import Settings

DASHBOARD = Path(__file__).resolve().parent.parent / "deploy" / "grafana" / "dashboard.json"
# The sample names Prometheus stores for each kind of metric family.
SAMPLES = {
    "counter": ("_total",),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum"),
}


@pytest.fixture(scope="module")
def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


@pytest.fixture(scope="module")
def exposed() -> dict[str, str]:
    """Each of this service's metric families (by name) and its type, as GET /metrics serves
    them; with the task queue, a worker's job metrics too (it serves them on its own port)."""
    if importlib.util.find_spec(f"{PREFIX}.tasks") is not None:
        importlib.import_module(f"{PREFIX}.tasks.worker")
    with TestClient(create_app(Settings(_env_file=None)), base_url="http://127.0.0.1") as client:
        text = client.get("/metrics").text
    return {
        family.name: family.type
        for family in text_string_to_metric_families(text)
        if family.name.startswith(f"{PREFIX}_")
        and family.type in SAMPLES
        # The parser reads a counter's `_created` series as a gauge family of its own.
        and not family.name.endswith("_created")
    }


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]


def queried(dashboard: dict[str, Any]) -> set[str]:
    """Every metric name the dashboard's queries name, with its namespace filled in."""
    (namespace,) = [v for v in dashboard["templating"]["list"] if v["name"] == "namespace"]
    names = set()
    for panel in panels(dashboard):
        for target in panel["targets"]:
            expr = target["expr"].replace("${namespace}", namespace["query"])
            names |= set(re.findall(rf"\b{PREFIX}_[a-z_]+", expr))
    return names


def test_it_is_a_dashboard_grafana_loads(dashboard: dict[str, Any]) -> None:
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["namespace"]["query"] == PREFIX
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in panels(dashboard):
        assert panel["datasource"]["uid"] == "${datasource}"
        assert panel["targets"], panel["title"]
        refs = [target["refId"] for target in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


def test_every_name_it_queries_is_one_the_service_exposes(
    dashboard: dict[str, Any], exposed: dict[str, str]
) -> None:
    samples = {name + suffix for name, kind in exposed.items() for suffix in SAMPLES[kind]}
    assert queried(dashboard) - samples == set()


def test_every_metric_the_service_exposes_has_a_panel(
    dashboard: dict[str, Any], exposed: dict[str, str]
) -> None:
    names = queried(dashboard)
    unshown = {
        name for name, kind in exposed.items() if not any(name + s in names for s in SAMPLES[kind])
    }
    assert unshown == set()
