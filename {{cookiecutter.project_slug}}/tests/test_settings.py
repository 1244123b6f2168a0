from __future__ import annotations

import logging
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)
from fastapi.testclient import TestClient
from pydantic import ValidationError

import {{ cookiecutter.package_name }} as package
from {{ cookiecutter.package_name }}.logs import logging_config
from {{ cookiecutter.package_name }}.main import create_app
from {{ cookiecutter.package_name }}.settings import Settings

from . import processes

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
    config = logging_config("warning", json=False)
    package_logger = config["loggers"]["{{ cookiecutter.package_name }}"]
    assert package_logger == {"handlers": ["default"], "level": "WARNING", "propagate": False}


def test_env_example_lists_every_setting_with_its_default() -> None:
    example = Path(__file__).parent.parent / ".env.example"
    lines = [line for line in example.read_text().splitlines() if line and not line.startswith("#")]
    assert {line.split("=", 1)[0].lower() for line in lines} == set(Settings.model_fields)
    assert Settings(_env_file=example) == Settings(_env_file=None)


# --- Safe by default ----------------------------------------------------------


def run(cwd: Path, *args: str, **environment: str) -> subprocess.CompletedProcess[str]:
    """`python *args` with `environment` and none of the service's own variables set
    otherwise, and no `.env` in its folder."""
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env=processes.environment(**environment),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=EXIT_WAIT,
        check=False,
    )


# The two ways the README starts the service.
COMMANDS = {
    "python-m": ["-m", package.__name__],
    "uvicorn": ["-m", "uvicorn", f"{package.__name__}.main:app", "--port", "0"],
}


@pytest.mark.parametrize("command", list(COMMANDS.values()), ids=list(COMMANDS))
def test_production_without_a_key_refuses_to_start_in_one_line(
    tmp_path: Path, command: list[str]
) -> None:
    finished = run(tmp_path, *command, ENVIRONMENT="production")
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


def pem(key: PublicKeyTypes) -> str:
    return key.public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo).decode()


PUBLIC_KEY = pem(ed25519.Ed25519PrivateKey.generate().public_key())
# PEM armour around bytes that are no key.
BAD_PEM = "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----"


@pytest.mark.parametrize(
    "keys",
    [
        {"auth_secret": SECRET, "auth_public_key": PUBLIC_KEY},
        {"auth_secret": SECRET, "auth_jwks_url": "https://id.example.com/jwks.json"},
        {"auth_public_key": PUBLIC_KEY, "auth_jwks_url": "https://x/jwks"},
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
        ("REDIS_URL", "redis://localhost:6379/0?max_connections=-1", "not a Redis URL"),
        ("REDIS_URL", "redis://localhost:6379/0?socket_timeout=inf", "at most 300"),
        ("REDIS_URL", "redis://localhost/0?socket_connect_timeout=1e400", "at most 300"),
        ("REDIS_URL", "redis://localhost/0?socket_keepalive=yes&socket_timeout=-1", "above 0"),
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


def test_root_path_loses_a_trailing_slash() -> None:
    assert Settings(_env_file=None, root_path="/realtime/").root_path == "/realtime"
    assert Settings(_env_file=None, root_path="/").root_path == ""


# --- Field report 2: values that pass a type check but cannot work ----------------


def bounded_numbers() -> list[tuple[str, float]]:
    """Every float setting, and any other number computed in floats, with its upper bound."""
    bounded = []
    for name, field in Settings.model_fields.items():
        if field.annotation is float or name == "ws_burst":
            limits = [m.le for m in field.metadata if getattr(m, "le", None) is not None]
            assert limits, f"{name.upper()} has no upper bound"
            bounded.append((name.upper(), limits[0]))
    return bounded


@pytest.mark.parametrize(("variable", "bound"), bounded_numbers())
@pytest.mark.parametrize("written", ["inf", "-inf", "nan", "Infinity", "1e400", "1e300", "above"])
def test_a_number_setting_refuses_what_is_not_a_finite_number_within_its_bound(
    refusal: Callable[[str, str], str], variable: str, bound: float, written: str
) -> None:
    # inf and 1e400 overflow later (math.ceil, Redis PEXPIRE, socket timeouts); huge
    # finite values are mistakes (an AUTH_LEEWAY of years accepts long-expired tokens).
    if written == "above":
        written = str(int(bound) + 1)
    refusal(variable, written)


@pytest.mark.parametrize(("variable", "bound"), bounded_numbers())
def test_a_number_setting_takes_its_bound(
    monkeypatch: pytest.MonkeyPatch, variable: str, bound: float
) -> None:
    monkeypatch.setenv(variable, str(int(bound)))
    assert getattr(Settings(_env_file=None), variable.lower()) == bound


@pytest.mark.parametrize(
    "key",
    [
        pem(ed25519.Ed25519PrivateKey.generate().public_key()),
        pem(ec.generate_private_key(ec.SECP256R1()).public_key()),
        pem(ec.generate_private_key(ec.SECP521R1()).public_key()),
    ],
    ids=["ed25519", "p-256", "p-521"],
)
def test_a_public_key_of_a_kind_tokens_are_signed_with_is_taken(key: str) -> None:
    assert Settings(_env_file=None, auth_public_key=key).auth_public_key == key


def _private_pem() -> str:
    key = ed25519.Ed25519PrivateKey.generate()
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()).decode()


@pytest.mark.parametrize(
    ("variable", "written", "why"),
    [
        ("AUTH_PUBLIC_KEY", "not a PEM key", "not a PEM public key"),
        ("AUTH_PUBLIC_KEY", BAD_PEM, "PEM"),
        ("AUTH_PUBLIC_KEY", PUBLIC_KEY.replace("-----\n", "-----\nAAAA", 1), "PEM"),
        ("AUTH_PUBLIC_KEY", _private_pem(), "a private key"),
        ("AUTH_PUBLIC_KEY", pem(x25519.X25519PrivateKey.generate().public_key()), "supported"),
        ("AUTH_PUBLIC_KEY", pem(ec.generate_private_key(ec.SECP256K1()).public_key()), "EC curve"),
        ("AUTH_JWKS_URL", "id.example.com/jwks.json", "valid URL"),
        ("AUTH_JWKS_URL", "ftp://id.example.com/jwks.json", "'http' or 'https'"),
        ("AUTH_JWKS_URL", "file:///etc/jwks.json", "'http' or 'https'"),
        ("AUTH_JWKS_URL", "https://", "valid URL"),
        ("AUTH_JWKS_URL", "https://id.example.com:99999/jwks.json", "valid URL"),
        ("AUTH_JWKS_URL", "https://id example.com/jwks.json", "valid URL"),
{%- if cookiecutter.use_lifespan %}
        ("UPSTREAM_URLS", "upstream.internal/health", "valid URL"),
        ("UPSTREAM_URLS", "https://a.example.com/health,b.example.com", "valid URL"),
        ("UPSTREAM_URLS", "redis://cache:6379", "'http' or 'https'"),
        ("UPSTREAM_URLS", '["https://a.example.com", 1]', "string"),
        ("UPSTREAM_URLS", '{"url": "https://a.example.com"}', "valid URL"),
{%- endif %}
{%- if cookiecutter.use_websockets %}
        ("WS_ALLOWED_ORIGINS", "app.example.com", "not an origin"),
        ("WS_ALLOWED_ORIGINS", "https://*.example.com", "not an origin"),
        ("WS_ALLOWED_ORIGINS", "https://a.example.com/app", "not an origin"),
        ("WS_ALLOWED_ORIGINS", "https://a.example.com,b.example.com", "not an origin"),
        ("WS_ALLOWED_ORIGINS", '{"a":1}', "not an origin"),
        ("WS_ALLOWED_ORIGINS", '"https://a.example.com"', "not an origin"),
{%- endif %}
        ("ROOT_PATH", "realtime", 'must start with "/"'),
        ("ROOT_PATH", "realtime/", 'must start with "/"'),
    ],
)
def test_a_key_url_or_path_that_cannot_work_is_refused_in_one_line_naming_it(
    refusal: Callable[[str, str], str], variable: str, written: str, why: str
) -> None:
    assert why in refusal(variable, written)


@pytest.mark.parametrize(
    ("command", "variable", "written"),
    [
        # One for each command: the settings above refuse the rest of each kind (the
        # JWKS URL, HISTORY_TTL=1e400 with Redis, ...) in the same one line, before
        # anything uses a value.
        ("uvicorn", "AUTH_PUBLIC_KEY", BAD_PEM),  # raised building the app
        ("python-m", "SHUTDOWN_TIMEOUT", "inf"),  # raised handing it to uvicorn
    ],
    ids=["uvicorn-AUTH_PUBLIC_KEY", "python-m-SHUTDOWN_TIMEOUT"],
)
def test_a_bad_value_stops_the_process_in_one_line_without_a_traceback(
    tmp_path: Path, command: str, variable: str, written: str
) -> None:
    # These passed the settings once and raised where they were used, in a traceback.
    finished = run(tmp_path, *COMMANDS[command], **{variable: written})
    assert finished.returncode != 0
    assert "Traceback" not in finished.stderr, finished.stderr[-600:]
    lines = finished.stderr.strip().splitlines()
    assert len(lines) == 1, finished.stderr[-600:]
    assert lines[0].startswith(f"error: {variable}: "), lines[0]


@pytest.mark.parametrize("host", ["not a host", "host.invalid", "[::1]"])
def test_python_m_stops_in_one_line_naming_a_host_it_cannot_listen_on(
    uvicorn_options: Callable[..., dict[str, Any]], host: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        uvicorn_options(HOST=host)
    message = str(exited.value.code)
    assert message.startswith(f"error: HOST: {host!r}"), message
    assert len(message.splitlines()) == 1


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "0.0.0.0", "::1"])
def test_python_m_passes_a_host_it_can_listen_on_to_uvicorn(
    uvicorn_options: Callable[..., dict[str, Any]], host: str
) -> None:
    assert uvicorn_options(HOST=host)["host"] == host
