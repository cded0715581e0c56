"""``max_response_bytes``: a profile key and PVETOP_MAX_RESPONSE_BYTES, checked like every setting."""

from __future__ import annotations

import pytest

from pvetop.cli import build_parser
from pvetop.config import DEFAULT_MAX_RESPONSE_BYTES, resolve_connection
from pvetop.errors import UsageError

BASE = {"PVETOP_HOST": "pve1", "PVETOP_USER": "root@pam", "PVETOP_TOKEN_NAME": "t", "PVETOP_TOKEN_VALUE": "s"}


@pytest.fixture(autouse=True)
def no_user_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))


def resolve(tmp_path, profile: str = "", **env: str):
    argv = ["status"]
    if profile:
        config = tmp_path / "config.toml"
        config.write_text(f'[profiles.p]\nhost = "pve1"\n{profile}\n')
        config.chmod(0o600)
        argv += ["--config", str(config)]
    return resolve_connection(build_parser().parse_args(argv), env={**BASE, **env}, warn=lambda message: None)


def test_default_is_64_mib(tmp_path):
    assert resolve(tmp_path).max_response_bytes == DEFAULT_MAX_RESPONSE_BYTES == 64 * 1024 * 1024


def test_profile_key_and_environment(tmp_path):
    assert resolve(tmp_path, "max_response_bytes = 2097152").max_response_bytes == 2097152
    settings = resolve(tmp_path, "max_response_bytes = 2097152", PVETOP_MAX_RESPONSE_BYTES="3145728")
    assert settings.max_response_bytes == 3145728


@pytest.mark.parametrize("value", ['"lots"', "-1", "1024", "true", "1.5"])
def test_bad_values_are_one_clear_error(tmp_path, value):
    with pytest.raises(UsageError, match="max_response_bytes must be a whole number of bytes"):
        resolve(tmp_path, f"max_response_bytes = {value}")
