"""No answer runs code during a bake, whichever way it reaches cookiecutter (issue 15, field report 10).

Cookiecutter renders an answer as a template when it replaces a default in
cookiecutter.json: from the command line, `extra_context` and a user config's
`default_context`, with or without `--no-input`. There the template's
extension has made the environment Jinja's immutable sandbox, which refuses
the bake in one line naming the answer before anything is written. Typed
answers and replay files are never rendered: the pre-generation hook refuses
their template syntax like any other bad answer.

Each payload below creates a marker file, reads what only code should reach,
changes the answers, or builds something huge, when rendered outside the
sandbox; each would bake (or leave the marker) on the template without it.

Within the sandbox, an answer may build no value heavier than MAX_SIZE and do no
more than MAX_WORK steps (local_extensions.bounds): the payloads of "Huge values and
endless work" build such values, or loop, without `*`, `**` or a big `range`.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from click.testing import CliRunner
from cookiecutter.cli import main as cookiecutter_main
from cookiecutter.exceptions import CookiecutterException, FailedHookException
from cookiecutter.generate import generate_context
from cookiecutter.main import cookiecutter
from cookiecutter.prompt import prompt_for_config
from cookiecutter.utils import create_env_with_context
from jinja2 import Environment
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment, safe_range

from local_extensions import UnrenderableTemplate, sandbox
from local_extensions.bounds import MAX_SIZE, MAX_WORK
from local_extensions.sizes import is_bounded
from tests.combinations import PROMPTS, TEMPLATE, default_answers

# MARKER is replaced with a path in the test's own folder.
PAYLOADS = {
    # The field report's own.
    "cycler-globals": "{{ cycler.__init__.__globals__.os.system('touch MARKER') }}",
    "joiner-globals": "{{ joiner.__init__.__globals__.os.system('touch MARKER') }}",
    "namespace-globals": "{{ namespace.__init__.__globals__.os.system('touch MARKER') }}",
    "lipsum-globals": "{{ lipsum.__globals__.os.system('touch MARKER') }}",
    "self-builtins": "{{ self.__init__.__globals__.__builtins__.__import__('os').system('touch MARKER') }}",
    "class-mro-subclasses": (
        "{% for c in ''.__class__.__mro__[1].__subclasses__() if c.__name__ == '_wrap_close' %}"
        "{{ c.__init__.__globals__['system']('touch MARKER') }}{% endfor %}"
    ),
    "item-access": "{{ cycler['__init__']['__globals__']['os']['system']('touch MARKER') }}",
    "attr-filter": (
        "{{ ((cycler|attr('__init__')|attr('__globals__'))['os']|attr('system'))('touch MARKER') }}"
    ),
    # Format strings reach attributes without a call: these would bake "Service posix".
    "str-format": "Service {{ '{0.__init__.__globals__[os].name}'.format(cycler) }}",
    "str-format-map": "Service {{ '{c.__init__.__globals__[os].name}'.format_map({'c': cycler}) }}",
    # The immutable sandbox: the answers so far are read-only.
    "answers-mutation": "Service {{ cookiecutter.update({'project_slug': 'other'}) }}",
    # Huge values, each bounded: Jinja's range limit, and ours on ** and *.
    "huge-range": "Service {{ range(10**10) | length }}",
    "huge-power": "Service {{ (2**100000) > 1 }}",
    "huge-repeat": "Service {{ ('x' * 10**6) | length }}",
}


@pytest.fixture(params=list(PAYLOADS.values()), ids=list(PAYLOADS))
def payload(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    value: str = request.param
    return value.replace("MARKER", str(tmp_path / "marker"))


def _assert_nothing_ran_or_was_written(tmp_path: Path, output_dir: Path) -> None:
    assert not (tmp_path / "marker").exists(), "the answer ran code"
    assert not output_dir.exists() or list(output_dir.iterdir()) == []


def _assert_refused_in_one_line(output: str, payload: str) -> None:
    # The sandbox's refusal names the answer as it was given. Prompts shown
    # before it share its line: typed input is not echoed.
    assert "Traceback" not in output
    [refusal] = [line[line.index("ERROR: ") :] for line in output.splitlines() if "ERROR: " in line]
    assert refusal.startswith(f"ERROR: {payload!r} refused by Jinja's sandbox: "), refusal


def _invoke(*args: str, stdin: str | None = None, env: Mapping[str, str] | None = None) -> tuple[int, str]:
    """Cookiecutter's own command line in this process: its exit status and output."""
    result = CliRunner().invoke(cookiecutter_main, [str(TEMPLATE), *args], input=stdin, env=env)
    escaped = result.exception is not None and not isinstance(result.exception, SystemExit)
    # What escapes cookiecutter's main reaches a user as a traceback ending in this.
    return result.exit_code, result.output + (f"\nTraceback: {result.exception!r}" if escaped else "")


def _replay_file(path: Path, **answers: Any) -> Path:
    """A replay file as cookiecutter writes one (the generated `.cookiecutter.json`), with `answers`."""
    settings = {name: PROMPTS[name] for name in ("_extensions", "_copy_without_render")}
    context = {**default_answers(), **settings, "_template": str(TEMPLATE), **answers}
    path.write_text(json.dumps({"cookiecutter": context}))
    return path


def _user_config(path: Path, default_context: Mapping[str, Any]) -> Path:
    """A user config file whose `default_context` holds `default_context`; replays kept beside it."""
    config = {"default_context": dict(default_context), "replay_dir": str(path.parent / "replay")}
    path.write_text(yaml.safe_dump(config))
    return path


# --- answers cookiecutter renders ---------------------------------------------------------


def test_a_command_line_answer_cannot_run_code(payload: str, tmp_path: Path) -> None:
    # A real process, as the field report's command runs.
    output_dir = tmp_path / "out"
    command = [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", str(output_dir)]
    result = subprocess.run(
        [*command, f"project_name={payload}"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    _assert_nothing_ran_or_was_written(tmp_path, output_dir)
    assert result.returncode != 0
    _assert_refused_in_one_line(result.stdout + result.stderr, payload)


def test_a_command_line_answer_shown_as_the_prompts_default_cannot_run_code(
    payload: str, tmp_path: Path
) -> None:
    # Without --no-input, cookiecutter renders the answer to show it as the default.
    output_dir = tmp_path / "out"
    status, output = _invoke("-o", str(output_dir), f"description={payload}", stdin="\n" * 12)
    _assert_nothing_ran_or_was_written(tmp_path, output_dir)
    assert status != 0
    _assert_refused_in_one_line(output, payload)


def test_an_extra_context_answer_cannot_run_code(payload: str, tmp_path: Path) -> None:
    output_dir = tmp_path / "out"
    with pytest.raises(SecurityError) as refused:
        cookiecutter(
            str(TEMPLATE), no_input=True, extra_context={"author_name": payload}, output_dir=str(output_dir)
        )
    _assert_nothing_ran_or_was_written(tmp_path, output_dir)
    # Also cookiecutter's own kind of error, which its command line prints as one line.
    assert isinstance(refused.value, CookiecutterException)
    _assert_refused_in_one_line(str(refused.value), payload)


@pytest.mark.parametrize("given_by", ["--config-file", "COOKIECUTTER_CONFIG"])
def test_a_user_config_answer_cannot_run_code(payload: str, given_by: str, tmp_path: Path) -> None:
    config = _user_config(tmp_path / "config.yaml", {"project_name": payload})
    output_dir = tmp_path / "out"
    if given_by == "--config-file":
        status, output = _invoke("--no-input", "--config-file", str(config), "-o", str(output_dir))
    else:
        status, output = _invoke("--no-input", "-o", str(output_dir), env={given_by: str(config)})
    _assert_nothing_ran_or_was_written(tmp_path, output_dir)
    assert status != 0
    _assert_refused_in_one_line(output, payload)


# --- answers cookiecutter passes on as data: the hook refuses them ------------------------


def test_a_replay_file_answer_cannot_run_code(
    payload: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    replay = _replay_file(tmp_path / "replay.json", project_name=payload)
    output_dir = tmp_path / "out"
    status, _ = _invoke("--replay-file", str(replay), "-o", str(output_dir))
    _assert_nothing_ran_or_was_written(tmp_path, output_dir)
    assert status != 0
    [line] = capfd.readouterr().err.splitlines()
    assert line.startswith("ERROR: project_name: "), line


def test_a_typed_answer_cannot_run_code(
    payload: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    output_dir = tmp_path / "out"
    # The payload at the first prompt, then every other prompt's default: a line each.
    prompts = len([name for name in PROMPTS if not name.startswith("_")])
    status, _ = _invoke("-o", str(output_dir), stdin=payload + "\n" * prompts)
    _assert_nothing_ran_or_was_written(tmp_path, output_dir)
    assert status != 0
    [line] = capfd.readouterr().err.splitlines()
    assert line.startswith("ERROR: project_name: "), line


# --- settings that decide whether the sandbox is there ------------------------------------

# Each would bake without the sandbox or the quoting filters, or leave the files unrendered.
REPLACED_SETTINGS = {
    "no-extensions": ("_extensions", []),
    "another-extension": ("_extensions", [*PROMPTS["_extensions"], "jinja2.ext.loopcontrols"]),
    "nothing-rendered": ("_copy_without_render", ["*"]),
    "everything-rendered": ("_copy_without_render", []),
}


@pytest.mark.parametrize(("name", "value"), list(REPLACED_SETTINGS.values()), ids=list(REPLACED_SETTINGS))
def test_a_replay_file_that_replaces_a_template_setting_is_refused(
    name: str, value: list[str], tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    replay = _replay_file(tmp_path / "replay.json", **{name: value})
    output_dir = tmp_path / "out"
    status, _ = _invoke("--replay-file", str(replay), "-o", str(output_dir))
    assert status != 0
    [line] = capfd.readouterr().err.splitlines()
    assert line.startswith(f"ERROR: {name}: must be "), line
    assert list(output_dir.iterdir()) == []


# extra_context and default_context may only narrow a list setting (cookiecutter
# checks the rest), and can narrow it to nothing.
NARROWED_SETTINGS = {k: v for k, v in REPLACED_SETTINGS.items() if set(v[1]) < set(PROMPTS[v[0]])}


@pytest.mark.parametrize(("name", "value"), list(NARROWED_SETTINGS.values()), ids=list(NARROWED_SETTINGS))
@pytest.mark.parametrize("given_by", ["extra_context", "default_context"])
def test_extra_or_default_context_that_narrows_a_template_setting_is_refused(
    name: str, value: list[str], given_by: str, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    output_dir = tmp_path / "out"
    if given_by == "extra_context":
        with pytest.raises(FailedHookException):
            cookiecutter(
                str(TEMPLATE), no_input=True, extra_context={name: value}, output_dir=str(output_dir)
            )
    else:
        config = _user_config(tmp_path / "config.yaml", {name: value})
        status, _ = _invoke("--no-input", "--config-file", str(config), "-o", str(output_dir))
        assert status != 0
    [line] = capfd.readouterr().err.splitlines()
    assert line.startswith(f"ERROR: {name}: must be "), line
    assert list(output_dir.iterdir()) == []


# --- huge values and endless work ---------------------------------------------------------

# Each builds a value of at least 1,000,000 characters or items (ten times MAX_SIZE), or
# outputs that much, from small arguments. Without the bounds each bakes in about a second
# ("Service 1000000"); scaled up (`center(10**10)`), each is a 10 GB answer.
HUGE = {
    # Widths and counts given to a filter or a method.
    "center-filter": "{{ 'x' | center(10**6) }}",
    "center-method": "{{ 'x'.center(10**6) }}",
    "ljust": "{{ 'x'.ljust(10**6) }}",
    "zfill": "{{ '1'.zfill(10**6) }}",
    "expandtabs": "{{ ('\t' * 10).expandtabs(10**5) }}",
    "indent-width": "{{ 'x\ny' | indent(10**6) }}",
    "indent-text": "{{ ('x\n' * 1000) | indent('y' * 1000) }}",
    "lipsum-paragraphs": "{{ lipsum(10**4) }}",
    "lipsum-words": "{{ lipsum(1, false, 10**6, 10**6 + 1) }}",
    "random-string": "{{ random_ascii_string(10**6) }}",
    "to-bytes": "{{ (1).to_bytes(10**6, 'big') }}",
    "round-precision": "{{ (10**4000) | round(-10**6) }}",
    "batch-fill": "{{ [1] | batch(10**6, 0) | list }}",
    "slice-count": "{{ [1] | slice(10**6) | list }}",
    "tojson-indent": "{{ [[[[[[1]]]]]] | tojson(10**5) }}",
    "jsonify-indent": "{{ [[[[[[1]]]]]] | jsonify(10**5) }}",
    # Text repeated at each match, between items, at each break or link.
    "replace-filter": "{{ ('x' * 1000) | replace('x', 'x' * 1000) }}",
    "replace-empty": "{{ ('x' * 1000) | replace('', 'y' * 1000) }}",
    "replace-method": "{{ ('x' * 1000).replace('x', 'x' * 1000) }}",
    "translate": "{{ ('a' * 1000).translate({97: 'x' * 1000}) }}",
    "join-separator": "{{ range(1000) | join('x' * 1000) }}",
    "join-method": "{{ ('x' * 1000).join('y' * 1000) }}",
    "join-big-list": "{{ range(100000) | join(',') }}",
    "wordwrap": "{{ ('a ' * 1000) | wordwrap(1, wrapstring='x' * 1000) }}",
    "urlize-target": "{{ ('a.co ' * 1000) | urlize(target='x' * 1000) }}",
    "slugify-separator": "{{ ('a ' * 1000) | slugify(separator='x' * 1000) }}",
    # Format widths, precisions and repeated fields.
    "format-width": "{{ '{:>1000000}'.format('x') }}",
    "format-width-argument": "{{ '{:{}}'.format('x', 10**6) }}",
    "format-precision": "{{ '{:.1000000f}'.format(1.5) }}",
    "format-repeated-field": "{{ ('{0}' * 1000).format('x' * 1000) }}",
    "format-map": "{{ ('{a}' * 1000).format_map({'a': 'x' * 1000}) }}",
    "printf-filter": "{{ '%1000000s' | format('x') }}",
    "printf-star": "{{ '%*s' % (10**6, 'x') }}",
    "printf-precision": "{{ '%.1000000f' % 1.5 }}",
    "printf-repeated-key": "{{ ('%(a)s' * 1000) % {'a': 'x' * 1000} }}",
    # The same item many times over, then written out.
    "nested-repeat": "{{ [['x'] * 1000] * 1000 }}",
    "nested-repeat-joined": "{{ ([('x' * 10000)] * 100) | join }}",
    "fromkeys": "{{ dict.fromkeys(range(1000), 'x' * 1000) }}",
    # Doubling, step by step.
    "namespace-concat": (
        "{% set ns = namespace(s='x') %}{% for i in range(20) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
        "{{ ns.s }}"
    ),
    "namespace-plus": (
        "{% set ns = namespace(s='x') %}{% for i in range(20) %}{% set ns.s = ns.s + ns.s %}{% endfor %}"
        "{{ ns.s }}"
    ),
    "namespace-list": (
        "{% set ns = namespace(l=[1]) %}{% for i in range(20) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}"
        "{{ ns.l }}"
    ),
    "macro-recursion": "{% macro f(s, n) %}{{ f(s ~ s, n - 1) if n else s }}{% endmacro %}{{ f('x', 20) }}",
    # Written out in a loop.
    "loop-output": "{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}",
    "set-block": "{% set s %}{% for i in range(1000) %}{{ 'x' * 1000 }}{% endfor %}{% endset %}{{ s }}",
}

# Each runs for ever without the bounds (10**10 steps or more), with no range above 100,000.
ENDLESS = {
    "nested-ranges": "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    "three-nested-ranges": (
        "{% for i in range(10000) %}{% for j in range(10000) %}{% for k in range(10000) %}"
        "{% endfor %}{% endfor %}{% endfor %}"
    ),
    "nested-texts": "{% for a in 'x' * 100000 %}{% for b in 'x' * 100000 %}{% endfor %}{% endfor %}",
    "macro-fan-out": (
        "{% macro f(n) %}{% for i in range(10) %}{{ f(n - 1) if n else '' }}{% endfor %}{% endmacro %}"
        "{{ f(10) }}"
    ),
    "calls-in-nested-loops": (
        "{% set c = cycler(1, 2) %}{% for i in range(100000) %}{% for j in range(100000) %}"
        "{% set _ = c.next() %}{% endfor %}{% endfor %}"
    ),
    "slice-generator": "{{ [1] | slice(10**10) | list | length }}",
}

# Each raises in Python, which cookiecutter would show as a traceback.
RAISING = {
    "division-by-zero": "Service {{ 1 / 0 }}",
    "lipsum-empty-range": "Service {{ lipsum(1, false, 5, 5) }}",
    "text-plus-number": "Service {{ 'a' + 1 }}",
    "endless-recursion": "{% macro f() %}{{ f() }}{% endmacro %}Service {{ f() }}",
    "no-namespace": "{% set x = 1 %}{% set x.y = 2 %}Service",
}


def test_the_bounds_are_what_the_readme_says() -> None:
    # README, "Answers never run code".
    assert (MAX_SIZE, MAX_WORK) == (100_000, 1_000_000)


@pytest.mark.parametrize("answer", list(HUGE.values()), ids=list(HUGE))
def test_an_answer_that_builds_a_huge_value_is_refused(answer: str, tmp_path: Path) -> None:
    # What the payload writes is captured, and only its length becomes the name.
    answer = f"Service {{% set made %}}{answer}{{% endset %}}{{{{ made | length }}}}"
    output_dir = tmp_path / "out"
    with pytest.raises(SecurityError) as refused:
        cookiecutter(
            str(TEMPLATE), no_input=True, extra_context={"project_name": answer}, output_dir=str(output_dir)
        )
    _assert_nothing_ran_or_was_written(tmp_path, output_dir)
    _assert_refused_in_one_line(str(refused.value), answer)


@pytest.mark.parametrize("answer", list(ENDLESS.values()), ids=list(ENDLESS))
def test_an_answer_that_loops_without_end_is_refused(answer: str, tmp_path: Path) -> None:
    # A real process, so that a render that never ends fails the test instead of holding it.
    output_dir = tmp_path / "out"
    command = [sys.executable, "-m", "cookiecutter", "--no-input", str(TEMPLATE), "-o", str(output_dir)]
    try:
        result = subprocess.run(
            [*command, f"project_name=Service {answer}"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    except subprocess.TimeoutExpired:
        pytest.fail("the bake was still rendering the answer after 60 s")
    _assert_nothing_ran_or_was_written(tmp_path, output_dir)
    assert result.returncode != 0
    _assert_refused_in_one_line(result.stdout + result.stderr, f"Service {answer}")


@pytest.mark.parametrize("answer", list(RAISING.values()), ids=list(RAISING))
def test_an_answer_that_raises_is_refused_in_one_line(answer: str, tmp_path: Path) -> None:
    output_dir = tmp_path / "out"
    status, output = _invoke("--no-input", "-o", str(output_dir), f"project_name={answer}")
    assert status != 0
    _assert_nothing_ran_or_was_written(tmp_path, output_dir)
    assert "Traceback" not in output, output
    [line] = [line for line in output.splitlines() if "ERROR: " in line]
    assert line.startswith(f"ERROR: {answer!r} cannot be rendered: "), line
    with pytest.raises(UnrenderableTemplate):
        cookiecutter(
            str(TEMPLATE), no_input=True, extra_context={"project_name": answer}, output_dir=str(output_dir)
        )


def test_every_filter_and_test_of_the_bake_is_bounded() -> None:
    env = create_env_with_context(generate_context(str(TEMPLATE / "cookiecutter.json")))
    for table in (env.filters, env.tests):
        assert [name for name, f in table.items() if not is_bounded(cast(Callable[..., Any], f))] == []


# --- what still works ---------------------------------------------------------------------

HARMLESS = {
    "Service {{ 1 + 1 }}": "Service 2",
    "{{ 'realtime' | title }} Service": "Realtime Service",
    "{{ '{} {}'.format('Realtime', 'Service') }}": "Realtime Service",
    "Service {{ range(3) | join('-') }}": "Service 0-1-2",
    "Service {{ 2 ** 10 }} {{ 'ab' * 2 }}": "Service 1024 abab",
    "Service {{ cookiecutter | length }}": "Service 0",
    # Within the bounds, what the bounds are about still works.
    "Service {{ '%03d' | format(7) }}": "Service 007",
    "Service {{ '{:03}'.format(7) }}": "Service 007",
    "{% for w in ['a', 'b'] %}{{ w | upper }}{% endfor %} Service": "AB Service",
    "Service {{ range(3) | map('string') | join(', ' ~ '') | replace(', ', '-') }}": "Service 0-1-2",
    "Service {{ 'ab' | center(4) | trim }}": "Service ab",
    "Service {{ 'yes' if cookiecutter.missing is defined else 'no' }}": "Service no",
    "Service {{ cookiecutter.missing | default('x') }}": "Service x",
    "{% set n = namespace(n=0) %}{% for i in range(3) %}{% set n.n = n.n + i %}{% endfor %}S {{ n.n }}": (
        "S 3"
    ),
}


@pytest.mark.parametrize(("answer", "rendered"), HARMLESS.items(), ids=list(HARMLESS))
def test_harmless_template_text_in_an_answer_is_rendered_as_before(answer: str, rendered: str) -> None:
    # Where cookiecutter renders an answer (the step every refusal above stops at).
    context = generate_context(str(TEMPLATE / "cookiecutter.json"), extra_context={"project_name": answer})
    answers = prompt_for_config(context, no_input=True)
    assert answers["project_name"] == rendered
    assert answers["project_slug"] == rendered.lower().replace(" ", "-")


def test_the_bake_renders_in_jinjas_immutable_sandbox() -> None:
    env = create_env_with_context(generate_context(str(TEMPLATE / "cookiecutter.json")))
    assert isinstance(env, ImmutableSandboxedEnvironment)
    assert env.globals["range"] is safe_range
    # The cookiecutter filters and tags the template uses are still there.
    assert {"slugify", "jsonify", "string_literal", "answers_json"} <= set(env.filters)
    assert "now" in env.extensions["cookiecutter.extensions.TimeExtension"].tags


def test_sandboxing_an_environment_sets_up_what_jinjas_own_sandbox_does() -> None:
    # sandbox() repeats what SandboxedEnvironment.__init__ adds to an
    # Environment: this fails when a Jinja release adds more.
    ours, jinjas = Environment(), ImmutableSandboxedEnvironment()
    sandbox(ours)
    assert vars(ours).keys() == vars(jinjas).keys()
    assert ours.globals == jinjas.globals
    assert ours.binop_table == jinjas.binop_table  # type: ignore[attr-defined]
    assert ours.unop_table == jinjas.unop_table  # type: ignore[attr-defined]
    # Every filter and test is Jinja's own, bounded (local_extensions.bounds).
    for table, jinjas_table in ((ours.filters, jinjas.filters), (ours.tests, jinjas.tests)):
        assert table.keys() == jinjas_table.keys()
        assert all(is_bounded(cast(Callable[..., Any], f)) for f in table.values())
        assert {k: getattr(v, "__wrapped__", None) for k, v in table.items() if k != "attr"} == {
            k: v for k, v in jinjas_table.items() if k != "attr"
        }
