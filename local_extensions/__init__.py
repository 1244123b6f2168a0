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
import types
from collections.abc import Callable, Iterable, Iterator
from functools import update_wrapper
from typing import Any, cast

from cookiecutter.exceptions import ContextDecodingException
from jinja2 import Environment, Template, nodes, pass_environment
from jinja2.exceptions import SecurityError, UndefinedError
from jinja2.ext import Extension
from jinja2.filters import do_attr
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment, SandboxedFormatter, safe_range
from markupsafe import Markup

from . import bounds, sizes
from .bounds import MAX_POWER_DIGITS

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


# Cookiecutter's command line prints its own exceptions, these among them,
# as one line and exits 1; anything else escapes as a traceback.
class UnrenderableTemplate(ContextDecodingException):  # type: ignore[misc]  # cookiecutter is untyped
    """An answer (or template) whose rendering raised; the message names it and the error."""


class UnsafeTemplate(SecurityError, UnrenderableTemplate):
    """An answer (or template) that tried what Jinja's sandbox refuses; the message names it."""


class SandboxedTemplate(Template):
    """A template rendered within the sandbox's bounds (local_extensions.bounds), whose failures
    name the answer or file they came from, in one line."""

    source: str | None = None

    def render(self, *args: Any, **kwargs: Any) -> str:
        """Render as Jinja does; raise UnsafeTemplate where the sandbox refuses, and
        UnrenderableTemplate where the template raised (`{{ 1/0 }}`).

        An undefined variable's UndefinedError passes unchanged: cookiecutter
        reports it itself, naming the prompt.
        """
        what = repr(self.source) if self.source is not None else f"template {self.name}"
        try:
            with bounds.budget():
                return super().render(*args, **kwargs)
        except (SecurityError, OverflowError, MemoryError) as exc:
            # OverflowError: Jinja's sandbox refuses a huge range() with it.
            reason = str(exc).removesuffix(".") or type(exc).__name__
            raise UnsafeTemplate(
                f"ERROR: {what} refused by Jinja's sandbox: {reason}; "
                "answers may use filters and arithmetic on small values, not Python internals"
            ) from exc
        except UndefinedError:
            raise
        except Exception as exc:  # the outer boundary of a render
            reason = " ".join(f"{type(exc).__name__}: {exc}".split()).rstrip(":")
            raise UnrenderableTemplate(f"ERROR: {what} cannot be rendered: {reason}") from exc


class AnswerSandbox(ImmutableSandboxedEnvironment):
    """Jinja's immutable sandbox, within the bounds of local_extensions.bounds: every operator, call,
    filter, loop and output of a render is weighed and charged there."""

    template_class = SandboxedTemplate
    code_generator_class = bounds.BoundedCodeGenerator
    intercepted_binops = frozenset({"+", "-", "*", "/", "//", "%", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        """Apply the operator; raise SecurityError where its result would be huge."""
        bounds.charge(1)
        if operator == "**" and _power_digits(left, right) > MAX_POWER_DIGITS:
            raise SecurityError(f"a power of more than {MAX_POWER_DIGITS} digits is too big")
        if operator == "*":
            bounds.refuse_size(_product_size(left, right), "a repetition or product")
        if operator == "%":
            bounds.refuse_size(sizes.printf_size(left, right), "a %-formatted text")
        return self.weighed(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        """Call as Jinja's sandbox does; raise SecurityError where the result would be huge."""
        # The double underscores, as Jinja's: a template may pass any keyword.
        if not __self.is_safe_callable(__obj):
            raise SecurityError(f"{__obj!r} is not safely callable")
        sizes.check_call(__obj, args, kwargs)
        return __self.weighed(__context.call(__obj, *args, **kwargs))

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        """Jinja's sandboxed ``str.format`` and ``format_map``, bounding each field's width and
        the whole text (Jinja 3.1.6's own, with a bounded formatter)."""
        if not isinstance(value, types.MethodType | types.BuiltinMethodType) or value.__name__ not in (
            "format",
            "format_map",
        ):
            return None
        owner = value.__self__
        if not isinstance(owner, str):
            return None
        text_type, is_format_map = type(owner), value.__name__ == "format_map"

        def wrapper(*args: Any, **kwargs: Any) -> str:
            formatter: SandboxedFormatter
            if isinstance(owner, Markup):
                formatter = sizes.BoundedEscapeFormatter(self, escape=owner.escape)
            else:
                formatter = sizes.BoundedFormatter(self)
            if is_format_map:
                if kwargs:
                    raise TypeError("format_map() takes no keyword arguments")
                if len(args) != 1:
                    raise TypeError(f"format_map() takes exactly one argument ({len(args)} given)")
                kwargs, args = args[0], ()
            return text_type(formatter.vformat(owner, args, kwargs))

        return update_wrapper(wrapper, value)

    def weighed(self, value: Any) -> Any:
        """`value`, once weighed (local_extensions.bounds.weigh); compiled templates call this."""
        bounds.weigh(value)
        return value

    def iterate(self, iterable: Iterable[Any], cost: int) -> Iterator[Any]:
        """A loop's items, each charging `cost`; compiled templates call this."""
        return bounds.iterate(iterable, cost)

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


def _product_size(left: Any, right: Any) -> int:
    """How much ``left * right`` weighs when it repeats a text or list, or multiplies
    whole numbers (0 otherwise)."""
    if isinstance(left, int) and isinstance(right, int):
        return bounds.measure(left)[0] + bounds.measure(right)[0]
    for sequence, count in ((left, right), (right, left)):
        if isinstance(count, int) and not isinstance(sequence, int | float | dict):
            return bounds.measure(sequence)[0] * count
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
    # Every filter and test, bounded (the quoting extension adds its own before this).
    for table in (sandboxed.filters, sandboxed.tests):
        for name, function in table.items():
            table[name] = sizes.bounded_filter(name, cast(Callable[..., Any], function))


class QuotingExtension(Extension):
    """Sandboxes the environment, then adds the quoting filters and ``answers_json``.

    The name is older than the sandbox: every answers file and cruft project
    names it in ``_extensions``, and cookiecutter accepts only names that
    ``cookiecutter.json`` lists.
    """

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["string_literal"] = string_literal
        environment.filters["python_string"] = python_string
        environment.filters["markdown_text"] = markdown_text
        environment.filters["answers_json"] = answers_json
        sandbox(environment)
