"""Validate the answers before cookiecutter writes anything.

Cookiecutter runs this file from a temporary copy, so it cannot import a
sibling module: everything it needs lives here, as pure functions the
template's suite imports. A rejection prints one line naming the prompt and
what is allowed, and exits 1; cookiecutter then removes the output folder.
"""

from __future__ import annotations

import json
import keyword
import re
import sys
import unicodedata
from collections.abc import Iterator, Mapping
from typing import Any

PYTHON_VERSIONS = ("3.11", "3.12", "3.13")
LICENSES = ("MIT", "Apache-2.0", "BSD-3-Clause", "Proprietary")
TOGGLES = (
    "use_lifespan",
    "use_background_tasks",
    "use_websockets",
    "use_redis",
    "use_task_queue",
)

SLUG_PATTERN = re.compile(r"[a-z][a-z0-9]*(?:-[a-z0-9]+)*")
PACKAGE_PATTERN = re.compile(r"[a-z][a-z0-9_]*")
EMAIL_PATTERN = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
# Built from parts: cookiecutter renders this file with Jinja before running it.
TEMPLATE_SYNTAX = tuple("{" + second for second in ("{", "%", "#"))

# Longest accepted answer per free-text prompt.
MAX_LENGTHS = {
    # The name is a string literal in settings.py: it must fit one line there.
    "project_name": 60,
    # Short enough that imports of the package fit the generated line length.
    "project_slug": 40,
    "package_name": 32,
    "description": 200,
    "author_name": 100,
    "author_email": 254,
}
# Answers that name things must not read as a path. Backslashes stay allowed in
# names (they are not separators on the systems this project runs on); the slug
# and package patterns already refuse every separator.
PATH_LIKE = ("project_name", "project_slug", "package_name", "author_name")

# How cookiecutter.json tells cookiecutter to render this template. A replay
# file can replace them, and extra_context or a user config's default_context
# can narrow them (even to []), all before any hook runs: without the
# extension, answers are rendered outside Jinja's sandbox and the files
# without their quoting filters. Refusing here stops such a bake; what was
# already rendered or imported before it is in the README ("Answers never run code").
TEMPLATE_SETTINGS: dict[str, list[str]] = {
    "_extensions": ["local_extensions.QuotingExtension"],
    "_copy_without_render": ["*.html", "*.js"],
}

# Import names the generated project already uses: a package with one of
# these names would shadow the dependency or the test folder.
RESERVED_PACKAGES = frozenset(
    {
        "app",
        "fastapi",
        "starlette",
        "uvicorn",
        "pydantic",
        "pydantic_settings",
        "httpx",
        "httpx2",
        "redis",
        "websockets",
        "anyio",
        "pytest",
        "tests",
        "test",
        "playwright",
        "saq",
        "croniter",
        "jwt",
        "cryptography",
        "prometheus_client",
        "pythonjsonlogger",
        "opentelemetry",
        "typing_extensions",
        "jsonschema",
    }
)


class InvalidAnswer(ValueError):
    """An answer the template cannot render into a working project."""


def unsupported_combination(answers: Mapping[str, Any]) -> str | None:
    """Why this set of toggles is not offered, or None when it is.

    The one place that decides which combinations exist: the hook rejects
    with this message and the template's suite builds its matrix from it.
    """
    if answers["use_redis"] and not answers["use_lifespan"]:
        return (
            "use_redis=true needs use_lifespan=true: the lifespan opens and closes the "
            "Redis connections and supervises the pub/sub listener"
        )
    if answers["use_task_queue"] and not answers["use_redis"]:
        return "use_task_queue=true needs use_redis=true: the queue keeps its jobs in Redis"
    return None


def _text_problems(name: str, value: str) -> Iterator[str]:
    if not value.strip():
        yield "must not be empty"
        return
    limit = MAX_LENGTHS[name]
    # Quotes and backslashes count twice: each is escaped where the answer
    # becomes a string literal.
    length = len(value) + sum(value.count(char) for char in "\\\"'")
    if length > limit:
        yield f"must be at most {limit} characters, quotes and backslashes counting twice (got {length})"
    if any(unicodedata.category(char) in ("Cc", "Cf", "Cs") for char in value):
        yield "must not contain control characters"
    if any(marker in value for marker in TEMPLATE_SYNTAX):
        yield f"must not contain template syntax ({', '.join(TEMPLATE_SYNTAX)})"
    if name in PATH_LIKE:
        if "/" in value:
            yield "must not contain a path separator (/)"
        if ".." in value:
            yield "must not contain '..'"
        if value.startswith("."):
            yield "must not start with a dot"


def _pattern_problems(name: str, value: str) -> Iterator[str]:
    if name == "project_slug" and not SLUG_PATTERN.fullmatch(value):
        yield (
            "must be lowercase letters and digits in hyphen-separated words, "
            "starting with a letter (e.g. realtime-service)"
        )
    if name == "package_name":
        if not PACKAGE_PATTERN.fullmatch(value):
            yield (
                "must be a lowercase Python identifier: a letter, then letters, digits "
                "or underscores (e.g. realtime_service)"
            )
        elif keyword.iskeyword(value):
            yield f"must not be a Python keyword ({value!r})"
        elif value in sys.stdlib_module_names:
            yield f"must not shadow the standard-library module {value!r}"
        elif value in RESERVED_PACKAGES:
            yield f"must not shadow {value!r}, which the generated project already imports"
    if name == "author_email" and not EMAIL_PATTERN.fullmatch(value):
        yield "must look like an email address (name@example.com)"


def validate(answers: Mapping[str, Any]) -> None:
    """Raise InvalidAnswer naming the first bad prompt and what is allowed."""
    for name in MAX_LENGTHS:
        value = answers[name]
        if not isinstance(value, str):
            raise InvalidAnswer(f"{name}: must be text, got {type(value).__name__}")
        for problem in (*_text_problems(name, value), *_pattern_problems(name, value)):
            raise InvalidAnswer(f"{name}: {problem}; got {value!r}")
    if answers["python_version"] not in PYTHON_VERSIONS:
        raise InvalidAnswer(
            f"python_version: must be one of {', '.join(PYTHON_VERSIONS)}; got {answers['python_version']!r}"
        )
    if answers["license"] not in LICENSES:
        raise InvalidAnswer(f"license: must be one of {', '.join(LICENSES)}; got {answers['license']!r}")
    for toggle in TOGGLES:
        if not isinstance(answers[toggle], bool):
            raise InvalidAnswer(f"{toggle}: must be true or false; got {answers[toggle]!r}")
    reason = unsupported_combination(answers)
    if reason is not None:
        raise InvalidAnswer(f"unsupported combination: {reason}")


def validate_settings(context: Mapping[str, Any]) -> None:
    """Raise InvalidAnswer naming the first of TEMPLATE_SETTINGS that differs from cookiecutter.json's."""
    for name, expected in TEMPLATE_SETTINGS.items():
        value = context.get(name)
        if value != expected:
            raise InvalidAnswer(
                f"{name}: must be {json.dumps(expected)}, as the template's cookiecutter.json sets it "
                f"(leave it out of replay files, extra_context and default_context); got {value!r}"
            )


def main(answers: Mapping[str, Any]) -> int:
    try:
        validate_settings(answers)
        validate(answers)
    except InvalidAnswer as exc:
        print(f"ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(json.loads(r"""{{ cookiecutter | tojson }}""")))
