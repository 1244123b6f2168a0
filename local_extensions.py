"""Jinja filters that turn prompt answers into safe literals for each file type.

Cookiecutter puts the template's folder on ``sys.path`` while it renders, so
``cookiecutter.json`` can load this module by name (``_extensions``).
Answers are data: every place that embeds one in code goes through a filter
here instead of pasting raw text between quotes.
"""

from __future__ import annotations

import json
import re
from typing import Any

from jinja2 import Environment
from jinja2.ext import Extension

# Markdown characters that start emphasis, links, HTML, headings or tables.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")

# Context keys worth keeping in the answers file: the prompts, plus what a
# re-bake needs to load this template's extensions and copy rules.
_REPLAY_KEYS = ("_template", "_extensions", "_copy_without_render")


def string_literal(value: str) -> str:
    """A double-quoted literal valid in TOML and JSON (and Python, though ruff may requote it).

    ``json.dumps`` escapes quotes, backslashes and control characters; with
    ``ensure_ascii=False`` it keeps non-ASCII text as is, because TOML refuses
    the surrogate pairs that ASCII-only JSON uses for characters beyond the BMP.
    """
    return json.dumps(value, ensure_ascii=False)


def python_string(value: str) -> str:
    """A Python string literal quoted the way ruff format would quote it.

    Double quotes, unless the text holds more double than single quotes:
    then single quotes, so the formatter finds nothing to change.
    """
    quote = "'" if value.count('"') > value.count("'") else '"'
    return quote + value.replace("\\", "\\\\").replace(quote, "\\" + quote) + quote


def markdown_text(value: str) -> str:
    """Escape text so Markdown shows it literally."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", value)


def answers_json(context: dict[str, Any]) -> str:
    """The answers as a cookiecutter replay file (``--replay-file``)."""
    kept = {k: v for k, v in context.items() if not k.startswith("_") or k in _REPLAY_KEYS}
    return json.dumps({"cookiecutter": kept}, indent=2, ensure_ascii=False)


class QuotingExtension(Extension):
    """Registers ``string_literal``, ``python_string``, ``markdown_text`` and ``answers_json``."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["string_literal"] = string_literal
        environment.filters["python_string"] = python_string
        environment.filters["markdown_text"] = markdown_text
        environment.filters["answers_json"] = answers_json
