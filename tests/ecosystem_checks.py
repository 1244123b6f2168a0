"""Reading the files that tooling outside Python consumes: Dockerfile, .dockerignore, README, workflows.

Pure functions over text, so the ecosystem tests can check what Docker and
GitHub Actions would do on a machine that has neither.
"""

from __future__ import annotations

import importlib
import json
import re
import shlex
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from click.testing import CliRunner


@dataclass(frozen=True)
class Instruction:
    keyword: str
    arguments: str


def dockerfile_instructions(text: str) -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        # Docker drops comment lines, including those inside a continued instruction.
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
        pending = ""
    if pending:
        raise ValueError(f"the Dockerfile ends inside a continued instruction: {pending!r}")
    return instructions


def stages(instructions: list[Instruction]) -> list[list[Instruction]]:
    """The instructions grouped by build stage, each starting with its FROM."""
    grouped: list[list[Instruction]] = []
    for instruction in instructions:
        if instruction.keyword == "FROM":
            grouped.append([])
        if not grouped:
            raise ValueError(f"{instruction.keyword} before the first FROM")
        grouped[-1].append(instruction)
    return grouped


def exec_form(arguments: str) -> list[str]:
    """The JSON array of an exec-form CMD or HEALTHCHECK ... CMD; raises on shell form."""
    array = arguments[arguments.index("CMD") + 3 :] if arguments.startswith("--") else arguments
    command = json.loads(array)
    if not isinstance(command, list) or not all(isinstance(part, str) for part in command):
        raise ValueError(f"not an exec-form command: {arguments!r}")
    return command


def env_assignments(stage: list[Instruction]) -> dict[str, str]:
    """The stage's `ENV key=value ...` settings (later ones win)."""
    values: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for assignment in shlex.split(instruction.arguments):
                key, separator, value = assignment.partition("=")
                if not separator:
                    raise ValueError(f"use the ENV key=value form: {instruction.arguments!r}")
                values[key] = value
    return values


def run_command(arguments: str) -> str:
    """A shell-form RUN's command line, without its leading `--mount=...`-style flags."""
    words = arguments.split(" ")
    while words and words[0].startswith("--"):
        words.pop(0)
    return " ".join(words).strip()


def _glob_to_regex(pattern: str) -> re.Pattern[str]:
    # Docker's .dockerignore globs: `*`, `?` and `[...]` stay within one path
    # segment, `**` crosses any number of them.
    regex = ""
    index = 0
    while index < len(pattern):
        if pattern.startswith("**/", index):
            regex += "(?:.*/)?"
            index += 3
        elif pattern.startswith("**", index):
            regex += ".*"
            index += 2
        elif pattern[index] == "*":
            regex += "[^/]*"
            index += 1
        elif pattern[index] == "?":
            regex += "[^/]"
            index += 1
        elif pattern[index] == "[" and "]" in pattern[index + 1 :]:
            end = pattern.index("]", index + 1)
            members = pattern[index + 1 : end]
            regex += "[" + ("^" + members[1:] if members.startswith(("^", "!")) else members) + "]"
            index = end + 1
        else:
            regex += re.escape(pattern[index])
            index += 1
    return re.compile(regex)


def dockerignore_rules(text: str) -> list[tuple[re.Pattern[str], bool]]:
    """Each pattern and whether it re-includes (`!`), in file order."""
    rules = []
    for line in text.splitlines():
        pattern = line.strip()
        if not pattern or pattern.startswith("#"):
            continue
        include = pattern.startswith("!")
        pattern = pattern.removeprefix("!").strip().strip("/")
        rules.append((_glob_to_regex(pattern), include))
    return rules


def in_build_context(path: str, rules: list[tuple[re.Pattern[str], bool]]) -> bool:
    """Whether Docker sends `path` (project-relative, POSIX) to the build.

    As in moby's patternmatcher: the last rule that matches the path or one of
    its parent folders decides.
    """
    candidates = [str(p) for p in [PurePosixPath(path), *PurePosixPath(path).parents] if str(p) != "."]
    sent = True
    for regex, include in rules:
        if any(regex.fullmatch(candidate) for candidate in candidates):
            sent = include
    return sent


def code_snippets(markdown: str) -> list[str]:
    """Every fenced block's lines and every inline code span of a Markdown text."""
    snippets: list[str] = []
    for block in re.findall(r"^```[a-z]*\n(.*?)^```", markdown, flags=re.MULTILINE | re.DOTALL):
        snippets += block.splitlines()
    without_blocks = re.sub(r"^```.*?^```", "", markdown, flags=re.MULTILINE | re.DOTALL)
    snippets += re.findall(r"`([^`\n]+)`", without_blocks)
    return snippets


def commands(lines: Iterable[str]) -> list[str]:
    """Shell command lines split at `&&` into single commands, comments and blanks dropped."""
    found = []
    for line in lines:
        for command in re.sub(r"(^|\s)#.*", "", line).split("&&"):
            if command.strip():
                found.append(" ".join(command.split()))
    return found


def workflow_run_lines(workflow: dict[str, Any]) -> list[str]:
    """Every line of every `run:` step of every job."""
    return [
        line
        for job in workflow["jobs"].values()
        for step in job.get("steps", [])
        if "run" in step
        for line in step["run"].splitlines()
    ]


def validate_with_builtin_schema(schema: str, *paths: str) -> tuple[int, str]:
    """Run check-jsonschema's own command line in this process (offline builtin schemas)."""
    # check-jsonschema ships no type information; its click command is all we use.
    command = importlib.import_module("check_jsonschema").main
    result = CliRunner().invoke(command, ["--builtin-schema", schema, *paths])
    return result.exit_code, result.output
