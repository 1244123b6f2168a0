"""Break15 findings, field report 10: huge values the sandbox's bounds miss.

The README promises that a `range` of more than 100,000 items, a `*` repetition of more than
100,000 items and a `**` power of more than 4,300 digits are refused before anything is
written (tests/test_answers_sandbox.py: "Huge values, each bounded"). The same values come
from filters and `str.format` with no `*` at all; scaled up (`center(10**10)`), each is a
10 GB answer. Run from the template's root: `uv run pytest findings/break15`; each test fails
on main at 4367cdd (the sizes here are kept small enough to bake in a second when unbounded).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from cookiecutter.main import cookiecutter
from jinja2.exceptions import SecurityError

from tests.combinations import TEMPLATE

# Each renders a 1,000,000-character value: ten times the bound on `*` and `range`.
HUGE = {
    "center": "Service {{ ('x' | center(10**6)) | length }}",
    "replace": "Service {{ (('x' * 1000) | replace('x', 'x' * 1000)) | length }}",
    "format-width": "Service {{ '{:>1000000}'.format('x') | length }}",
    "printf-width": "Service {{ ('%1000000s' | format('x')) | length }}",
    "indent": "Service {{ ('x\\ny' | indent(10**6)) | length }}",
}


@pytest.mark.parametrize("answer", list(HUGE.values()), ids=list(HUGE))
def test_a_huge_value_built_without_star_is_refused(answer: str, tmp_path: Path) -> None:
    output_dir = tmp_path / "out"
    with pytest.raises(SecurityError):
        cookiecutter(
            str(TEMPLATE), no_input=True, extra_context={"project_name": answer}, output_dir=str(output_dir)
        )
    assert not output_dir.exists() or list(output_dir.iterdir()) == []


def test_nested_loops_within_the_range_bound_do_not_hold_the_bake(tmp_path: Path) -> None:
    # Each range is within the bound; together 10**10 iterations: the bake never ends.
    answer = "Service {% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"
    command = [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", str(tmp_path)]
    try:
        finished = subprocess.run(
            [*command, f"project_name={answer}"], capture_output=True, text=True, timeout=30, check=False
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the bake was still rendering the answer after 30 s")
    assert finished.returncode != 0
