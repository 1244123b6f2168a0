"""The combination matrix, derived from cookiecutter.json and the hook's rule.

A new boolean prompt joins the matrix by being added to cookiecutter.json:
nothing here lists toggles by hand. `python -m tests.combinations` prints the
matrix as JSON for CI (`fromJSON` in a GitHub Actions matrix).
"""

from __future__ import annotations

import functools
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cookiecutter.generate import generate_context
from cookiecutter.prompt import prompt_for_config

from hooks.pre_gen_project import unsupported_combination

TEMPLATE = Path(__file__).resolve().parent.parent
PROMPTS: dict[str, Any] = json.loads((TEMPLATE / "cookiecutter.json").read_text())

# Short names for ids: use_background_tasks -> "tasks", use_websockets -> "ws".
_SHORT_NAMES = {"use_background_tasks": "tasks", "use_websockets": "ws"}


def toggles() -> list[str]:
    """Every boolean prompt, in cookiecutter.json order."""
    return [name for name, default in PROMPTS.items() if isinstance(default, bool)]


def choices() -> dict[str, list[str]]:
    """Every multiple-choice prompt and its values."""
    return {
        name: values
        for name, values in PROMPTS.items()
        if isinstance(values, list) and not name.startswith("_")
    }


def _short(toggle: str) -> str:
    return _SHORT_NAMES.get(toggle, toggle.removeprefix("use_"))


@functools.cache
def _rendered_defaults() -> dict[str, Any]:
    context = generate_context(str(TEMPLATE / "cookiecutter.json"))
    rendered = prompt_for_config(context, no_input=True)
    return {name: value for name, value in rendered.items() if not name.startswith("_")}


def default_answers() -> dict[str, Any]:
    """Every prompt's answer in a `--no-input` bake, derived names rendered by cookiecutter itself."""
    return dict(_rendered_defaults())


def _choice_label(name: str, value: str) -> str:
    return "py" + value.replace(".", "") if name == "python_version" else value.lower()


def combination_id(answers: dict[str, Any]) -> str:
    """A readable id: `lifespan-tasks-ws-no-redis`, plus any non-default choice (`py312`, `mit`)."""
    parts = [_short(t) if answers[t] else f"no-{_short(t)}" for t in toggles()]
    for name, values in choices().items():
        if answers.get(name, values[0]) != values[0]:
            parts.append(_choice_label(name, answers[name]))
    return "-".join(parts)


@dataclass(frozen=True)
class Combination:
    id: str
    answers: dict[str, Any] = field(hash=False)

    @property
    def full_answers(self) -> dict[str, Any]:
        """Every prompt's answer in this bake: the defaults, overridden by this combination's."""
        return default_answers() | self.answers

    @property
    def is_default(self) -> bool:
        """Whether this is the `--no-input` bake: every answer the default."""
        return self.full_answers == default_answers()

    @property
    def python_version(self) -> str:
        return str(self.full_answers["python_version"])


def _toggle_products() -> list[dict[str, Any]]:
    names = toggles()
    return [
        dict(zip(names, values, strict=True))
        for values in itertools.product([True, False], repeat=len(names))
    ]


def supported() -> list[Combination]:
    """The full product of the toggles the hook accepts, every other choice's value spread across them.

    Choice values other than the default go round-robin over the combinations,
    so each value is baked at least once without multiplying the matrix.
    """
    combos = [answers for answers in _toggle_products() if unsupported_combination(answers) is None]
    # The default toggles keep the default choices too: that combination is
    # the bake a `--no-input` user gets.
    defaults = default_answers()
    takers = [answers for answers in combos if any(answers[t] != defaults[t] for t in toggles())]
    assignments = [(name, value) for name, values in choices().items() for value in values[1:]]
    for index, (name, value) in enumerate(assignments):
        takers[(index * 3 + 1) % len(takers)][name] = value
    return [Combination(combination_id(a), a) for a in combos]


def unsupported() -> list[Combination]:
    """The toggle combinations the hook must refuse."""
    return [
        Combination(combination_id(a), a)
        for a in _toggle_products()
        if unsupported_combination(a) is not None
    ]


def main() -> None:
    print(json.dumps({"include": [{"id": c.id, "python": c.python_version} for c in supported()]}))


if __name__ == "__main__":
    main()
