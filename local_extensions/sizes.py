"""What each operation an answer can run may make: the sizes behind local_extensions.bounds' MAX_SIZE.

Most filters and methods make something about as big as what they are given,
which local_extensions.bounds weighs and charges. These can make far more, by a factor
an argument chooses: a width (`center`, `indent`, a format field's `{:>N}` or
`%Ns`), a count (`batch`, `slice`, `lipsum`, `to_bytes`), or a text repeated
at each match, item or break (`replace`, `join`, `wordwrap`, `urlize`). Each
is refused from its arguments, before it runs, when its result would pass
MAX_SIZE. Every filter and test of the environment is wrapped
(`bounded_filter`); method and global calls are checked in the sandbox's
`call` (`check_call`); `str.format` runs through `BoundedFormatter`.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Collection, Mapping
from functools import wraps
from typing import Any

from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEscapeFormatter, SandboxedFormatter

from .bounds import charge, measure, refuse_size, weigh, weight


def _text_length(value: Any) -> int:
    return len(value) if isinstance(value, str | bytes | bytearray) else weight(value)


def _int(value: Any) -> int:
    """A width or count as Python would use it (an int, a bool), else 0: Python then raises TypeError."""
    return value if isinstance(value, int) else 0


# --- what one operation may make ---------------------------------------------------------

# A %-format field: optional mapping key, flags, width and precision (each a number or `*`).
_PRINTF_FIELD = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.DOTALL)
# The width and precision of a str.format spec ([[fill]align][sign][z][#][0][width][,_][.precision][type]).
_FORMAT_SPEC = re.compile(r"(?:.?[<>=^])?[-+ ]?z?#?0?(\d*)[,_]?(?:\.(\d*))?.?", re.DOTALL)


def printf_size(template: Any, arguments: Any) -> int:
    """About how long `template % arguments` is; counts each field as its widest argument."""
    if not isinstance(template, str | bytes):
        return 0
    text = template if isinstance(template, str) else template.decode("latin-1")
    values = arguments if isinstance(arguments, tuple) else (arguments,)
    stars = iter(v for v in values if isinstance(v, int))
    widest = max((weight(v) for v in values), default=0)
    if isinstance(arguments, Mapping):
        widest = max((weight(v) for v in arguments.values()), default=0)
    size = len(text)
    for field in _PRINTF_FIELD.finditer(text):
        for number in field.group(1, 2):
            if number == "*":
                size += max(next(stars, 0), 0)
            elif number:
                size += int(number)
        size += widest
    return size


def format_spec_size(spec: str) -> int:
    """The width plus the precision a str.format spec asks for (0 when it asks for neither)."""
    match = _FORMAT_SPEC.match(spec)
    if match is None:
        return 0
    return sum(int(number) for number in match.groups() if number)


class BoundedFormatter(SandboxedFormatter):
    """Jinja's formatter for `str.format` in the sandbox, bounding each field's width and
    precision, and the whole text, as it goes."""

    made = 0

    def format_field(self, value: Any, format_spec: str) -> Any:
        """Format one field; SecurityError when it, or the text so far, would be too big."""
        refuse_size(format_spec_size(format_spec), "a format field")
        field = super().format_field(value, format_spec)
        self.made += len(field)
        refuse_size(self.made, "a formatted text")
        charge(len(field))
        return field


class BoundedEscapeFormatter(BoundedFormatter, SandboxedEscapeFormatter):
    """BoundedFormatter for `Markup.format`, escaping as Jinja's does."""


Sizer = Callable[[inspect.BoundArguments], int]


def _sum_work(bound: inspect.BoundArguments) -> int:
    # sum() of lists or tuples copies the total so far at each item: count times weight.
    items = bound.arguments["iterable"]
    start = bound.arguments.get("start", 0)
    if isinstance(start, int | float):
        return weight(items)
    count = len(items) if isinstance(items, Collection) else weight(items)
    return count * weight(items) + weight(start)


def _json_size(bound: inspect.BoundArguments) -> int:
    # Each item on a line of its own, indented by its depth times `indent`.
    size, depth = measure(bound.arguments.get("value", bound.arguments.get("obj")))
    indent = bound.arguments.get("indent")
    return size * (2 + _int(indent) * depth) if indent is not None else size * 2


def _replace_size(text: Any, old: Any, new: Any, count: Any) -> int:
    if not isinstance(text, str | bytes) or not isinstance(old, type(text)):
        return 0
    found = text.count(old)  # type: ignore[arg-type]  # old is of text's type
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * _text_length(new)


def _lines(text: Any) -> int:
    return text.count("\n") + 1 if isinstance(text, str) else 1


def _indent_width(width: Any) -> int:
    return len(width) if isinstance(width, str) else _int(width)


# Filters whose result can outgrow their input by a factor their arguments choose:
# what each would make (an upper bound), from its bound arguments.
FILTER_SIZES: dict[str, Sizer] = {
    "center": lambda a: max(_text_length(a.arguments["value"]), _int(a.arguments.get("width", 80))),
    "indent": lambda a: (
        len(str(a.arguments["s"])) + _lines(a.arguments["s"]) * _indent_width(a.arguments.get("width", 4))
    ),
    "format": lambda a: printf_size(
        a.arguments["value"], a.arguments.get("kwargs") or a.arguments.get("args", ())
    ),
    "join": lambda a: weight(a.arguments["value"]) * (1 + _text_length(a.arguments.get("d", ""))),
    "replace": lambda a: _replace_size(
        a.arguments["s"], a.arguments["old"], a.arguments["new"], a.arguments.get("count")
    ),
    # At most one break per character, each a `wrapstring` (default: a newline).
    "wordwrap": lambda a: (
        _text_length(a.arguments["s"]) * (1 + _text_length(a.arguments.get("wrapstring") or "\n"))
    ),
    "truncate": lambda a: _text_length(a.arguments["s"]) + _text_length(a.arguments.get("end", "...")),
    "batch": lambda a: (
        weight(a.arguments["value"])
        + (
            _int(a.arguments["linecount"]) * (1 + weight(a.arguments["fill_with"]))
            if a.arguments.get("fill_with") is not None
            else 0
        )
    ),
    "slice": lambda a: (
        weight(a.arguments["value"])
        + _int(a.arguments["slices"]) * (1 + weight(a.arguments.get("fill_with")))
    ),
    # Rounding to a precision of n digits (either way) makes 10**n on the way.
    "round": lambda a: abs(_int(a.arguments.get("precision", 0))),
    "tojson": _json_size,
    "jsonify": _json_size,
    # pprint indents each item by its depth.
    "pprint": lambda a: measure(a.arguments["value"])[0] * (4 + measure(a.arguments["value"])[1]),
    # Each link gains its URL again, its attributes and the target and rel given.
    "urlize": lambda a: (
        _text_length(a.arguments["value"]) * 3
        + len(str(a.arguments["value"]).split())
        * (64 + _text_length(a.arguments.get("target") or "") + _text_length(a.arguments.get("rel") or ""))
    ),
    # A separator between any two characters, and each replacement at each match.
    "slugify": lambda a: (
        _text_length(a.arguments["value"])
        * (
            1
            + _text_length(a.arguments.get("separator", "-"))
            + max((weight(pair) for pair in a.arguments.get("replacements", ())), default=0)
        )
    ),
}

# Filters that do more work than the size of their input and result: what that work is.
FILTER_WORK: dict[str, Sizer] = {"sum": _sum_work}

# Filter arguments refused whatever their value: a regular expression can take exponential time.
FILTER_REFUSED = {"slugify": ("regex_pattern",)}


def bounded_filter(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` (a filter or test) refusing what would outgrow MAX_SIZE and charging its work."""
    try:
        signature: inspect.Signature | None = inspect.signature(function)
    except (TypeError, ValueError):  # a builtin without one (length, abs): no sizing arguments
        signature = None
    # A context, an eval context or the environment, passed first, is not the template's value.
    passed = hasattr(function, "jinja_pass_arg")
    first = int(passed)
    # Jinja's async_variant filters take one that their signature (their sync
    # function's) does not show: left out of the binding.
    hidden = int(passed and not hasattr(inspect.unwrap(function), "jinja_pass_arg"))
    sizer = FILTER_SIZES.get(name)
    worker = FILTER_WORK.get(name)
    refused = FILTER_REFUSED.get(name, ())

    @wraps(function)
    def bounded(*args: Any, **kwargs: Any) -> Any:
        charge(1 + sum(weight(a) for a in args[first:]) + sum(weight(v) for v in kwargs.values()))
        if signature is not None and (sizer or worker or refused):
            bound = signature.bind(*args[hidden:], **kwargs)
            for argument in refused:
                if argument in bound.arguments:
                    raise SecurityError(f"the {name} filter's {argument} argument is not allowed")
            if sizer is not None:
                refuse_size(sizer(bound), f"the {name} filter's result")
            if worker is not None:
                charge(worker(bound))
        result = function(*args, **kwargs)
        weigh(result)
        return result

    bounded.sandbox_bounded = True  # type: ignore[attr-defined]
    return bounded


def is_bounded(function: Callable[..., Any]) -> bool:
    """Whether `function` is a filter or test that `bounded_filter` made."""
    return getattr(function, "sandbox_bounded", False) is True


# Methods (of texts, numbers) and functions whose result can outgrow their arguments.
def _method_size(method: Any, args: tuple[Any, ...]) -> int:
    owner = getattr(method, "__self__", None)
    name = getattr(method, "__name__", "")
    first = args[0] if args else None
    if isinstance(owner, str | bytes | bytearray):
        if name in ("center", "ljust", "rjust", "zfill"):
            return max(len(owner), _int(first))
        if name == "expandtabs":
            tab = "\t" if isinstance(owner, str) else b"\t"
            return len(owner) + owner.count(tab) * _int(first if args else 8)  # type: ignore[arg-type]
        if name == "replace" and len(args) >= 2:
            return _replace_size(owner, args[0], args[1], args[2] if len(args) > 2 else -1)
        if name == "join":
            return weight(first) * (1 + len(owner))
        if name == "translate" and isinstance(first, Mapping):
            return len(owner) * max((weight(v) for v in first.values()), default=1)
    if isinstance(owner, int) and name == "to_bytes":
        return _int(first) if args else 1
    module = getattr(method, "__module__", None)
    if module == "jinja2.utils" and name == "generate_lorem_ipsum":
        # n paragraphs of at most max words (or min, when larger) of at most 14 letters.
        defaults = (5, True, 20, 100)
        n, _, low, high = (*args, *defaults[len(args) :])[:4]
        return _int(n) * max(_int(low), _int(high)) * 16
    if module == "cookiecutter.extensions" and name == "random_ascii_string":
        return _int(first)
    return 0


def check_call(function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    """Charge a call a template makes, before it runs; SecurityError when its result would be huge."""
    charge(1 + sum(weight(a) for a in args) + sum(weight(v) for v in kwargs.values()))
    positional = _positional(function, args, kwargs) if kwargs else args
    name = _SHOWN.get(getattr(function, "__name__", ""), getattr(function, "__name__", "a call"))
    refuse_size(_method_size(function, positional), f"the result of {name}")


# Names a template calls these functions by.
_SHOWN = {"generate_lorem_ipsum": "lipsum"}


def _positional(function: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, ...]:
    """The arguments of a call in order, keywords placed where the signature puts them."""
    try:
        bound = inspect.signature(function).bind(*args, **kwargs)
    except (TypeError, ValueError):
        return args
    bound.apply_defaults()
    return tuple(bound.arguments.values())
