"""The template's Jinja extension: answers rendered in Jinja's sandbox, and quoted for each file type.

Cookiecutter puts the template's folder on ``sys.path`` while it renders, so
``cookiecutter.json`` can load this module by name (``_extensions``).
Answers are data: every place that embeds one in code goes through a filter
here instead of pasting raw text between quotes.

Cookiecutter also renders some answers as templates before any hook runs
(those from the command line, ``extra_context`` and a user config's
``default_context``, so that ``{{ 1 + 1 }}`` becomes ``2``), with one
Environment for the whole bake and no sandbox option
(https://github.com/cookiecutter/cookiecutter/issues/1415). Jinja loads
extensions inside the Environment's constructor, before anything is compiled:
the first moment anything of ours sees it, and where the extension turns it
into an immutable sandbox. A bake whose ``_extensions`` leaves this one out
never reaches this module; the pre-generation hook refuses it (README,
"Answers never run code").
"""

from __future__ import annotations

import json
import math
import re
import sys
from collections.abc import Sized
from typing import Any, cast

from cookiecutter.exceptions import ContextDecodingException
from jinja2 import Environment, Template, nodes, pass_environment
from jinja2.exceptions import SecurityError
from jinja2.ext import Extension
from jinja2.filters import do_attr
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import MAX_RANGE, ImmutableSandboxedEnvironment, SandboxedEnvironment, safe_range

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


# The largest number ``**`` may make: the most digits Python prints by default.
MAX_POWER_DIGITS = sys.int_info.default_max_str_digits
# The longest text or list ``*`` may make: Jinja's own bound on ``range``.
MAX_REPEAT = MAX_RANGE


# Cookiecutter's command line prints its own exceptions, this one among them,
# as one line and exits 1; anything else escapes as a traceback.
class UnsafeTemplate(SecurityError, ContextDecodingException):  # type: ignore[misc]  # cookiecutter is untyped
    """An answer (or template) that tried what Jinja's sandbox refuses; the message names it."""


class SandboxedTemplate(Template):
    """A template whose sandbox refusals name the answer or file they came from."""

    source: str | None = None

    def render(self, *args: Any, **kwargs: Any) -> str:
        """Render as Jinja does; raise UnsafeTemplate where the sandbox refuses."""
        try:
            return super().render(*args, **kwargs)
        except (SecurityError, OverflowError) as exc:
            # OverflowError: Jinja's sandbox refuses a huge range() with it.
            what = repr(self.source) if self.source is not None else f"template {self.name}"
            reason = str(exc).removesuffix(".")
            raise UnsafeTemplate(
                f"ERROR: {what} refused by Jinja's sandbox: {reason}; "
                "answers may use filters and arithmetic, not Python internals"
            ) from exc


class AnswerSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, bounding the numbers and texts that ``**`` and ``*`` make."""

    template_class = SandboxedTemplate
    intercepted_binops = frozenset({"**", "*"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Apply the operator; raise SecurityError where its result would be huge."""
        if operator == "**" and _power_digits(left, right) > MAX_POWER_DIGITS:
            raise SecurityError(f"a power of more than {MAX_POWER_DIGITS} digits is too big")
        if operator == "*" and _repeat_length(left, right) > MAX_REPEAT:
            raise SecurityError(f"a repetition of more than {MAX_REPEAT} items is too long")
        return super().call_binop(context, operator, left, right)

    def from_string(
        self,
        source: str | nodes.Template,
        globals: Any = None,
        template_class: type[Template] | None = None,
    ) -> Template:
        """Compile as Jinja does, keeping the text so that a refusal can name it."""
        template = super().from_string(source, globals, template_class)
        if isinstance(template, SandboxedTemplate) and isinstance(source, str):
            template.source = source
        return template


@pass_environment
def _attr(environment: Environment, obj: Any, name: str) -> Any:
    """Jinja's ``attr`` filter, passing an undefined on unchanged.

    Jinja's own replaces an undefined with a fresh one (``x|attr('__init__')|attr('y')``),
    which turns the sandbox's refusal into a plain "undefined" error.
    """
    if isinstance(obj, Undefined):
        return obj
    return do_attr(environment, obj, name)


def _power_digits(base: Any, exponent: Any) -> float:
    """About how many digits ``base ** exponent`` has, for whole numbers (0 otherwise)."""
    if isinstance(base, int) and isinstance(exponent, int) and exponent > 0:
        return (abs(base).bit_length() - 1) * exponent * math.log10(2)
    return 0


def _repeat_length(left: Any, right: Any) -> int:
    """How many items ``left * right`` has when it repeats a text or list (0 otherwise)."""
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, Sized) and not isinstance(sequence, dict) and isinstance(count, int):
            return len(sequence) * count
    return 0


# One sandboxed class per environment class (cookiecutter's StrictEnvironment).
_SANDBOXED_CLASSES: dict[type[Environment], type[AnswerSandbox]] = {}


def _sandboxed_class(cls: type[Environment]) -> type[AnswerSandbox]:
    if cls not in _SANDBOXED_CLASSES:
        _SANDBOXED_CLASSES[cls] = type(f"Sandboxed{cls.__name__}", (AnswerSandbox, cls), {})
    return _SANDBOXED_CLASSES[cls]


def sandbox(environment: Environment) -> None:
    """Turn `environment` into an AnswerSandbox in place, keeping its class's own behaviour.

    Must run before the environment compiles anything: code compiled earlier
    stays unsandboxed. Raises nothing.
    """
    if isinstance(environment, AnswerSandbox):
        return
    environment.__class__ = _sandboxed_class(type(environment))
    # What SandboxedEnvironment.__init__ adds to an Environment (the suite
    # checks this list against Jinja's).
    sandboxed = cast(AnswerSandbox, environment)
    sandboxed.globals["range"] = safe_range
    sandboxed.binop_table = SandboxedEnvironment.default_binop_table.copy()
    sandboxed.unop_table = SandboxedEnvironment.default_unop_table.copy()
    sandboxed.filters["attr"] = _attr


class QuotingExtension(Extension):
    """Sandboxes the environment, then adds the quoting filters and ``answers_json``.

    The name is older than the sandbox: every answers file and cruft project
    names it in ``_extensions``, and cookiecutter accepts only names that
    ``cookiecutter.json`` lists.
    """

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        sandbox(environment)
        environment.filters["string_literal"] = string_literal
        environment.filters["python_string"] = python_string
        environment.filters["markdown_text"] = markdown_text
        environment.filters["answers_json"] = answers_json
