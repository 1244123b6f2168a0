"""Whether an answer is one the app's OpenAPI schema documents: its status, headers and body.

Clients are generated from the schema, so an answer it does not document (a
status it leaves out, a body of another shape) is a bug even when a person
reading it would understand.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Protocol

from jsonschema import Draft202012Validator

# A schema's path parameters filled in with a value every one of ours accepts.
PATH_PARAMETER = re.compile(r"\{[^}]+\}")


class Answer(Protocol):
    """An HTTP response, from TestClient (httpx) or httpx2 alike."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def text(self) -> str: ...

    def json(self) -> Any: ...


def operations(schema: dict[str, Any], *, with_body: bool = False) -> list[tuple[str, str]]:
    """Every (METHOD, path) the schema documents; with `with_body`, those that take a body."""
    return [
        (method.upper(), path)
        for path, by_method in schema["paths"].items()
        for method, operation in by_method.items()
        if not with_body or "requestBody" in operation
    ]


def concrete(path: str) -> str:
    """`path` as the schema writes it (`/jobs/{job_id}`) with each parameter set to `x`."""
    return PATH_PARAMETER.sub("x", path)


def assert_documented(schema: dict[str, Any], method: str, path: str, answer: Answer) -> None:
    """Fail unless `answer` to `method path` (the schema's path) is documented, body and all.

    Its status must be among the operation's responses, each header that
    response documents must be present, and its body must be of a media type
    documented for it and validate against that media type's schema.
    """
    responses = schema["paths"][path][method.lower()]["responses"]
    status = str(answer.status_code)
    where = f"{method} {path} answered {status}"
    assert status in responses, f"{where}, not documented (only {sorted(responses)})"
    documented = responses[status]
    sent = {name.lower() for name in answer.headers}
    for header in documented.get("headers", {}):
        assert header.lower() in sent, f"{where} without {header}"
    media_type = answer.headers.get("content-type", "").partition(";")[0]
    media = documented.get("content", {}).get(media_type)
    assert media is not None, f"{where} with {media_type}, not documented for it"
    body = answer.json() if media_type == "application/json" else answer.text
    # The schema's `$ref`s point into its components: give them a root to resolve in.
    components = schema.get("components", {})
    validator = Draft202012Validator({**media["schema"], "components": components})
    errors = validator.iter_errors(body)
    problems = [f"{list(error.absolute_path)}: {error.message}" for error in errors]
    assert not problems, f"{where} with a body the schema does not describe: {problems}"
