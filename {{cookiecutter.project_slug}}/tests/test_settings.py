from __future__ import annotations

import inspect
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

import {{ cookiecutter.package_name }} as package
from {{ cookiecutter.package_name }}.__main__ import logging_config
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

SECRET = "a-test-secret-of-at-least-32-bytes"
# Seconds a refusing process may take: it should exit at once.
EXIT_WAIT = 30


def test_settings_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9123")
    monkeypatch.setenv("LOG_LEVEL", "debug")
    settings = Settings(_env_file=None)
    assert settings.port == 9123
    assert settings.log_level == "debug"


def test_a_bad_setting_fails_naming_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "not-a-port")
    with pytest.raises(ValidationError, match="port"):
        Settings(_env_file=None)


def test_settings_read_a_dotenv_file(tmp_path: Path) -> None:
    env_file = tmp_path / ".env"
    env_file.write_text("WORKERS=3\n")
    assert Settings(_env_file=env_file).workers == 3


def test_logging_config_routes_this_package_to_uvicorns_handler() -> None:
    config = logging_config("warning")
    package_logger = config["loggers"]["{{ cookiecutter.package_name }}"]
    assert package_logger == {"handlers": ["default"], "level": "WARNING", "propagate": False}


def test_env_example_lists_every_setting_with_its_default() -> None:
    example = Path(__file__).parent.parent / ".env.example"
    lines = [line for line in example.read_text().splitlines() if line and not line.startswith("#")]
    assert {line.split("=", 1)[0].lower() for line in lines} == set(Settings.model_fields)
    assert Settings(_env_file=example) == Settings(_env_file=None)


# --- Safe by default ----------------------------------------------------------


def run_in_production_without_a_key(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python *args` with ENVIRONMENT=production, no key, and no `.env` in its folder."""
    source = str(Path(inspect.getfile(package)).parent.parent)
    env = {name: value for name, value in os.environ.items() if not name.startswith("AUTH_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (source, os.environ.get("PYTHONPATH"))))
    env["ENVIRONMENT"] = "production"
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=EXIT_WAIT,
        check=False,
    )


@pytest.mark.parametrize(
    "command",
    [["-m", package.__name__], ["-m", "uvicorn", f"{package.__name__}.main:app", "--port", "0"]],
    ids=["python-m", "uvicorn"],
)
def test_production_without_a_key_refuses_to_start_in_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    finished = run_in_production_without_a_key(tmp_path, *command)
    assert finished.returncode != 0
    assert "Traceback" not in finished.stderr
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, finished.stderr
    for name in ("AUTH_SECRET", "AUTH_PUBLIC_KEY", "AUTH_JWKS_URL"):
        assert name in lines[0]
    assert finished.stdout == ""


def test_production_with_a_secret_is_valid() -> None:
    settings = Settings(_env_file=None, environment="production", auth_secret=SECRET)
    assert settings.environment == "production"


def test_an_unknown_environment_is_refused() -> None:
    with pytest.raises(ValidationError, match="environment"):
        Settings(_env_file=None, environment="prod")


def test_a_secret_shorter_than_32_bytes_is_refused() -> None:
    with pytest.raises(ValidationError, match="AUTH_SECRET must be at least 32 bytes"):
        Settings(_env_file=None, auth_secret="x" * 31)
    # Bytes, not characters: sixteen two-byte characters are enough.
    assert Settings(_env_file=None, auth_secret="é" * 16).auth_secret is not None
    with pytest.raises(ValidationError, match="AUTH_SECRET"):
        Settings(_env_file=None, auth_secret="é" * 15)


@pytest.mark.parametrize(
    "keys",
    [
        {"auth_secret": SECRET, "auth_public_key": "-----BEGIN PUBLIC KEY-----"},
        {"auth_secret": SECRET, "auth_jwks_url": "https://id.example.com/jwks.json"},
        {"auth_public_key": "-----BEGIN PUBLIC KEY-----", "auth_jwks_url": "https://x/jwks"},
    ],
    ids=["secret-and-public-key", "secret-and-jwks", "public-key-and-jwks"],
)
def test_two_keys_at_once_are_refused(keys: dict[str, Any]) -> None:
    with pytest.raises(ValidationError, match="set only one of AUTH_SECRET"):
        Settings(_env_file=None, **keys)


@pytest.mark.parametrize("path", ["/docs", "/redoc", "/openapi.json"])
def test_production_hides_the_api_docs_unless_docs_enabled(path: str) -> None:
    production = Settings(_env_file=None, environment="production", auth_secret=SECRET)
    with TestClient(create_app(production)) as client:
        assert client.get(path).status_code == 404
    enabled = production.model_copy(update={"docs_enabled": True})
    with TestClient(create_app(enabled)) as client:
        assert client.get(path).status_code == 200
    with TestClient(create_app(Settings(_env_file=None))) as client:
        assert client.get(path).status_code == 200


def test_development_without_a_key_warns_once_that_authentication_is_off(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.WARNING):
        create_app(Settings(_env_file=None))
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, caplog.text
    assert "authentication is OFF" in warnings[0].getMessage()
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        create_app(Settings(_env_file=None, auth_secret=SECRET))
    assert "authentication" not in caplog.text


def list_settings() -> list[str]:
    """The settings that hold lists, in this bake."""
    return [name for name, field in Settings.model_fields.items() if field.annotation == list[str]]


A, B = "https://a.example.com", "https://b.example.com"


@pytest.mark.parametrize(
    ("written", "meant"),
    [(f'["{A}", "{B}"]', [A, B]), (A, [A]), (f"{A}, {B}", [A, B]), ("[]", [])],
    ids=["json", "single", "commas", "empty-json"],
)
def test_every_list_setting_reads_json_a_single_value_or_commas(
    monkeypatch: pytest.MonkeyPatch, written: str, meant: list[str]
) -> None:
    names = list_settings()
    for name in names:
        monkeypatch.setenv(name.upper(), written)
    settings = Settings(_env_file=None)
    assert {name: getattr(settings, name) for name in names} == dict.fromkeys(names, meant)


@pytest.mark.parametrize(
    ("variable", "written", "meant"),
    [
        ("LOG_LEVEL", "DEBUG", "debug"),
        ("LOG_LEVEL", "Warn", "warning"),
        ("LOG_LEVEL", "fatal", "critical"),
        ("ENVIRONMENT", "Development", "development"),
        ("ENVIRONMENT", "dev", "development"),
    ],
)
def test_choices_are_case_insensitive_and_take_the_usual_aliases(
    monkeypatch: pytest.MonkeyPatch, variable: str, written: str, meant: str
) -> None:
    monkeypatch.setenv(variable, written)
    assert getattr(Settings(_env_file=None), variable.lower()) == meant


@pytest.mark.parametrize(
    ("variable", "written", "allowed"),
    [
        ("PORT", "80a", "integer"),
        ("WORKERS", "0", "greater than or equal to 1"),
        ("LOG_LEVEL", "verbose", "'warning'"),
        ("ENVIRONMENT", "staging", "'production'"),
        ("SHUTDOWN_TIMEOUT", "soon", "number"),
{%- if cookiecutter.use_redis %}
        ("REDIS_URL", "redis://localhost:6379/0?db=one", "not a Redis URL"),
        ("REDIS_PREFIX", "my app", "printable"),
        ("REDIS_PREFIX", "{tagged}", "braces"),
        ("REDIS_PREFIX", "ends-with:", "trailing ':'"),
        ("REDIS_PREFIX", "caf\u00e9", "ASCII"),
        ("REDIS_PREFIX", "x" * 65, "1 to 64"),
{%- endif %}
    ],
)
def test_a_bad_setting_stops_the_process_with_one_line_naming_it_its_value_and_what_is_allowed(
    refusal: Callable[[str, str], str], variable: str, written: str, allowed: str
) -> None:
    message = refusal(variable, written)
    assert repr(written) in message
    assert allowed in message


def test_python_m_passes_root_path_to_uvicorn(
    uvicorn_options: Callable[..., dict[str, Any]],
) -> None:
    assert uvicorn_options(ROOT_PATH="/realtime")["root_path"] == "/realtime"
