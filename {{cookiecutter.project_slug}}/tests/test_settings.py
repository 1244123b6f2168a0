from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from {{ cookiecutter.package_name }}.__main__ import logging_config
from {{ cookiecutter.package_name }}.settings import Settings


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
