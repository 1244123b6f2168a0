"""The template's own Python (hooks, suite, filters, benchmarks) meets the bar it sets for bakes."""

from __future__ import annotations

import sys

from tests.bakery import run
from tests.combinations import TEMPLATE


def test_ruff_lint_and_format_pass_on_the_templates_own_code() -> None:
    run([sys.executable, "-m", "ruff", "check", "--no-cache", "."], TEMPLATE)
    run([sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."], TEMPLATE)


def test_mypy_strict_passes_on_the_hooks_and_the_suite() -> None:
    # Files and strictness come from [tool.mypy] in pyproject.toml.
    run([sys.executable, "-m", "mypy"], TEMPLATE)
