"""The template's own Python (hooks, suite, filters, benchmarks) meets the bar it sets for bakes."""

from __future__ import annotations

import sys

import pytest

from tests.bakery import run
from tests.combinations import TEMPLATE


def test_ruff_lint_and_format_pass_on_the_templates_own_code() -> None:
    run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], TEMPLATE)
    run([sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."], TEMPLATE)


# Cold (a fresh clone has no .mypy_cache) it checks pytest, cookiecutter and httpx too.
@pytest.mark.long_running
def test_mypy_strict_passes_on_the_hooks_and_the_suite() -> None:
    # Files and strictness come from [tool.mypy] in pyproject.toml.
    run([sys.executable, "-m", "mypy"], TEMPLATE)
