"""How much an answer may build and do while Jinja renders it: the sandbox's bounds on size and work.

Jinja's sandbox stops a template from reaching Python internals, not from building
a 10 GB text or looping for ever (https://jinja.palletsprojects.com/en/stable/sandbox/).
The bound here has two parts, both per render of one answer (or file):

- a size: no value a template builds, and no single operation's result, may weigh more
  than MAX_SIZE (characters of a text, digits of a number, items of a list or
  mapping counted with their own items' weights). An operation whose result can
  outgrow its inputs by a factor the template chooses (a width, a count, a
  separator repeated between items, a format field's width) is refused from its
  arguments, before it runs;
- a work budget: every loop iteration, call, filter, operator and output charges
  what it touches (the weight of its arguments and result, a loop body's size per
  iteration), and a render that spends more than MAX_WORK is refused, however
  its loops are nested and whatever they iterate over.

This module holds the budget, the weights and the checks compiled into every
template; local_extensions/sizes.py what each filter, method and format may make.
A refusal is a SecurityError; local_extensions.SandboxedTemplate turns it into one line.
"""

from __future__ import annotations

import contextvars
import math
import sys
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context, Undefined
from jinja2.sandbox import MAX_RANGE
from jinja2.utils import Namespace

# The heaviest value a template may build: Jinja's own bound on `range`.
MAX_SIZE = MAX_RANGE
# The work one render may do, in items touched: ten values of the largest size.
MAX_WORK = 10 * MAX_SIZE
# The largest number ``**`` may make: the most digits Python prints by default.
MAX_POWER_DIGITS = sys.int_info.default_max_str_digits

_LOG10_2 = math.log10(2)


class Budget:
    """The work left to one render; `charge` raises SecurityError when it runs out."""

    def __init__(self, work: int = MAX_WORK) -> None:
        self.left = work

    def charge(self, work: int) -> None:
        self.left -= work
        if self.left < 0:
            raise SecurityError(f"rendering it takes more than {MAX_WORK} steps")


# The budget of the render under way. None outside a render (Jinja folds constant
# expressions while compiling): then each operation is still bounded on its own.
_budget: contextvars.ContextVar[Budget | None] = contextvars.ContextVar("answer_budget", default=None)


@contextmanager
def budget() -> Iterator[Budget]:
    """Open a budget for a render, or go on with the one already open (a render inside one)."""
    current = _budget.get()
    if current is not None:
        yield current
        return
    token = _budget.set(Budget())
    try:
        yield _budget.get() or Budget()
    finally:
        _budget.reset(token)


def charge(work: int) -> None:
    """Spend `work` of the open budget, if any; raise SecurityError past its end."""
    current = _budget.get()
    if current is not None:
        current.charge(work)


def measure(value: Any, limit: int = MAX_SIZE) -> tuple[int, int]:
    """The weight of `value` and how deeply it nests, counting shared items each time they occur.

    Stops once the weight passes `limit` (and returns what it has counted then),
    so that it costs at most about `limit` steps, however big the value is.
    """
    weight = depth = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack and weight <= limit:
        item, level = stack.pop()
        depth = max(depth, level)
        if isinstance(item, str | bytes | bytearray):
            weight += max(len(item), 1)
            continue
        if isinstance(item, bool) or item is None:
            weight += 1
            continue
        if isinstance(item, int):
            weight += max(1, math.ceil(item.bit_length() * _LOG10_2))
            continue
        if isinstance(item, range):
            weight += max(len(item), 1)
            continue
        if isinstance(item, Undefined):  # any other look at it raises (StrictUndefined)
            weight += 1
            continue
        if isinstance(item, Namespace):  # a mapping in disguise, which `repr` shows whole
            item = item._Namespace__attrs
        if isinstance(item, Mapping | Collection) and not isinstance(item, Context):
            weight += 0 if len(item) else 1  # its items count, or 1 for an empty one
            parts = (p for pair in item.items() for p in pair) if isinstance(item, Mapping) else item
            stack.extend((part, level + 1) for part in parts)
        else:  # a number, an iterator, a macro, a cycler, a template's context: what it shows is small
            weight += 1
    return weight, depth


def weigh(value: Any) -> int:
    """The weight of `value` (see `measure`), charged to the budget; SecurityError past MAX_SIZE."""
    weight = measure(value)[0]
    refuse_size(weight, "a value")
    charge(weight)
    return weight


def refuse_size(size: int | float, what: str) -> None:
    """Raise SecurityError when `size` passes MAX_SIZE."""
    if size > MAX_SIZE:
        raise SecurityError(f"{what} of more than {MAX_SIZE} characters or items is too big")


def weight(value: Any) -> int:
    """The weight of `value` (see `measure`), charged to nothing."""
    return measure(value)[0]


# --- where the compiled template checks -----------------------------------------------------


# What the compiled template does around an expression: `weighed` weighs the value
# where it is made, `iterate` charges each iteration of a loop (the two methods of
# local_extensions.AnswerSandbox). Jinja allows no node types of its own, so the
# code generator wraps the code of Jinja's nodes instead.
_WEIGHED = ("environment.weighed(", ")")


def _checks(template: nodes.Template) -> dict[int, tuple[str, str]]:
    """The code to put around each node (by id) that makes or repeats something."""
    checks: dict[int, tuple[str, str]] = {}
    for node in template.find_all(nodes.Expr | nodes.For | nodes.Output):  # type: ignore[arg-type]
        if isinstance(node, nodes.For):
            cost = _size(node.body) + _size(node.else_) + 1
            checks[id(node.iter)] = ("environment.iterate(", f", {cost})")
        elif (
            isinstance(node, nodes.List | nodes.Dict | nodes.Concat)
            or (isinstance(node, nodes.Tuple) and node.ctx == "load")
            or (isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Slice))
        ):
            checks[id(node)] = _WEIGHED
        elif isinstance(node, nodes.Compare):
            for operand in (node.expr, *(op.expr for op in node.ops)):
                checks[id(operand)] = _WEIGHED
        elif isinstance(node, nodes.Output):
            for child in node.nodes:
                if not isinstance(child, nodes.TemplateData):
                    checks[id(child)] = _WEIGHED
    return checks


def _size(body: list[nodes.Node]) -> int:
    """What running `body` once costs at least: its nodes, and the text it writes."""
    size = 0
    for statement in body:
        for node in (statement, *statement.find_all(nodes.Node)):
            size += len(node.data) if isinstance(node, nodes.TemplateData) else 1
    return size


class BoundedCodeGenerator(CodeGenerator):
    """Jinja's code generator, compiling in the checks `_checks` finds."""

    checks: dict[int, tuple[str, str]] = {}  # noqa: RUF012  # replaced for each template

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        self.checks = _checks(node)
        super().visit_Template(node, frame)

    def visit(self, node: nodes.Node, *args: Any, **kwargs: Any) -> Any:
        check = self.checks.get(id(node))
        if check is None:
            return super().visit(node, *args, **kwargs)
        self.write(check[0])
        super().visit(node, *args, **kwargs)
        self.write(check[1])
        return None


def iterate(iterable: Iterable[Any], cost: int) -> Iterator[Any]:
    """The items of `iterable`, charging `cost` for each."""
    for item in iterable:
        charge(cost)
        yield item
