"""Reading GET /metrics as Prometheus does: the exposition parsed into samples."""

from __future__ import annotations

import httpx2
from prometheus_client.parser import text_string_to_metric_families

from {{ cookiecutter.package_name }}.metrics import PREFIX

# One sample: its name and its labels.
Key = tuple[str, frozenset[tuple[str, str]]]


def samples(exposition: str) -> dict[Key, float]:
    """Every sample of the service's own metrics in `exposition`; fails if it does not parse."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(exposition)
        if family.name.startswith(f"{PREFIX}_")
        for sample in family.samples
    }


async def scraped(url: str) -> dict[Key, float]:
    """GET `url` (a service's or a worker's /metrics) and its samples; fails unless 200."""
    async with httpx2.AsyncClient() as http:
        response = await http.get(url)
    assert response.status_code == 200, response.text
    return samples(response.text)


def value(figures: dict[Key, float], name: str, **labels: str) -> float:
    """The sample `<prefix>_<name>` with exactly `labels`; 0 when absent (a series not yet used)."""
    return figures.get((f"{PREFIX}_{name}", frozenset(labels.items())), 0.0)


def moved(before: dict[Key, float], after: dict[Key, float], name: str, **labels: str) -> float:
    """How much the sample `<prefix>_<name>` with exactly `labels` grew from `before` to `after`."""
    return value(after, name, **labels) - value(before, name, **labels)


def label_values(figures: dict[Key, float], name: str, label: str) -> set[str]:
    """Every value `label` takes among the samples of `<prefix>_<name>`."""
    return {
        dict(labels)[label]
        for sample, labels in figures
        if sample == f"{PREFIX}_{name}" and label in dict(labels)
    }
