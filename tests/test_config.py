"""config.py: precedence CLI > env > profile, profiles, secrets, and every error message."""

from __future__ import annotations

import os
import sys

import pytest

from pvetop.cli import build_parser
from pvetop.config import (
    FIELDS,
    ConnectionSettings,
    load_config,
    parse_fingerprint,
    parse_host,
    resolve_connection,
    resolve_db,
    settings_from_sim_info,
)
from pvetop.errors import UsageError

FP = "ab" * 32
FP_COLONS = ":".join(["AB"] * 32)


@pytest.fixture(autouse=True)
def no_user_config(tmp_path, monkeypatch):
    """Never read the developer's real config file."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg-data"))


def args(*argv: str):
    return build_parser().parse_args(["status", *argv])


def write_config(tmp_path, text: str, mode: int = 0o600):
    path = tmp_path / "config.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def resolve(*argv: str, env: dict | None = None, warnings: list | None = None) -> ConnectionSettings:
    sink = warnings if warnings is not None else []
    return resolve_connection(args(*argv), env=env or {}, warn=sink.append)


PROFILES = f"""
default_profile = "home"

[profiles.home]
host = ["pve1:8006", "pve2"]
user = "root@pam"
token_name = "pvetop"
token_value = "file-secret"
verify_ssl = false
timeout = 7

[profiles.lab]
host = "lab1:9000"
user = "admin@pve"
password = "lab-password"
fingerprint = "{FP}"
"""


def test_profile_values_are_used_and_default_profile_is_chosen(tmp_path):
    path = write_config(tmp_path, PROFILES)
    settings = resolve("--config", str(path))
    assert settings.profile == "home"
    assert settings.hosts == (("pve1", 8006), ("pve2", 8006))
    assert (settings.user, settings.token_name, settings.token_value) == ("root@pam", "pvetop", "file-secret")
    assert settings.verify is False and settings.timeout == 7.0 and settings.password is None


def test_profile_option_selects_another_profile(tmp_path):
    path = write_config(tmp_path, PROFILES)
    settings = resolve("--config", str(path), "--profile", "lab")
    assert settings.hosts == (("lab1", 9000),)
    assert (settings.user, settings.password, settings.token_name) == ("admin@pve", "lab-password", None)
    assert settings.fingerprint == FP_COLONS
    assert settings.verify is True  # the default when the profile does not say


def test_env_beats_profile_and_cli_beats_env(tmp_path):
    path = write_config(tmp_path, PROFILES)
    env = {
        "PVETOP_HOST": "envhost:8443,[fe80::1]:8006",
        "PVETOP_TOKEN_VALUE": "env-secret",
        "PVETOP_VERIFY_SSL": "true",
    }
    from_env = resolve("--config", str(path), env=env)
    assert from_env.hosts == (("envhost", 8443), ("fe80::1", 8006))
    assert from_env.token_value == "env-secret" and from_env.verify is True
    assert from_env.user == "root@pam"  # still from the profile, field by field
    from_cli = resolve(
        "--config",
        str(path),
        "--host",
        "clihost",
        "--token-value",
        "cli-secret",
        "--verify-ssl",
        "false",
        "--timeout",
        "2",
        env=env,
    )
    assert from_cli.hosts == (("clihost", 8006),)
    assert from_cli.token_value == "cli-secret" and from_cli.verify is False and from_cli.timeout == 2.0


def test_options_given_before_the_subcommand_count_too(tmp_path):
    namespace = build_parser().parse_args(["--host", "early:1234", "--user", "u@pve", "--password", "pw", "status"])
    settings = resolve_connection(namespace, env={}, warn=lambda _: None)
    assert settings.hosts == (("early", 1234),) and settings.password == "pw"


def test_environment_alone_is_enough():
    settings = resolve(env={"PVETOP_HOST": "pve1", "PVETOP_USER": "root@pam", "PVETOP_PASSWORD": "pw"})
    assert settings.hosts == (("pve1", 8006),) and settings.password == "pw" and settings.profile is None


def test_full_token_id_gives_the_user():
    settings = resolve("--host", "pve1", "--token-name", "ops@pve!pvetop", "--token-value", "s")
    assert (settings.user, settings.token_name) == ("ops@pve", "pvetop")


def test_token_of_another_user_is_refused():
    with pytest.raises(UsageError, match="belongs to ops@pve, not to user root@pam"):
        resolve("--host", "pve1", "--user", "root@pam", "--token-name", "ops@pve!pvetop", "--token-value", "s")


def test_the_only_profile_is_used_without_default(tmp_path):
    path = write_config(tmp_path, '[profiles.only]\nhost = "h1"\nuser = "root@pam"\npassword = "p"\n')
    assert resolve("--config", str(path)).profile == "only"


def test_password_command_supplies_the_first_line(tmp_path):
    script = tmp_path / "secret.py"
    script.write_text("print('from-command')\nprint('second line')\n")
    command = f"{sys.executable} {script}"  # a shell command string
    path = write_config(tmp_path, f'[profiles.p]\nhost = "h"\nuser = "root@pam"\npassword_command = "{command}"\n')
    assert resolve("--config", str(path)).password == "from-command"


def test_password_command_is_skipped_when_a_password_is_given(tmp_path):
    path = write_config(tmp_path, '[profiles.p]\nhost = "h"\nuser = "root@pam"\npassword_command = "false"\n')
    assert resolve("--config", str(path), env={"PVETOP_PASSWORD": "env"}).password == "env"


def test_password_command_failure_is_a_clear_error(tmp_path):
    script = tmp_path / "locked.py"
    script.write_text("import sys\nsys.stderr.write('vault locked\\n')\nsys.exit(3)\n")
    path = write_config(
        tmp_path, f'[profiles.p]\nhost = "h"\nuser = "root@pam"\npassword_command = ["{sys.executable}", "{script}"]\n'
    )  # an argument list
    with pytest.raises(UsageError) as caught:
        resolve("--config", str(path))
    message = str(caught.value)
    assert "password_command" in message and "exit code 3" in message and "vault locked" in message
    assert str(path) in message


def test_password_command_printing_nothing_is_an_error(tmp_path):
    path = write_config(tmp_path, '[profiles.p]\nhost = "h"\nuser = "root@pam"\npassword_command = "true"\n')
    with pytest.raises(UsageError, match="printed no password"):
        resolve("--config", str(path))


def test_secrets_in_a_world_readable_file_warn(tmp_path):
    path = write_config(tmp_path, PROFILES, mode=0o644)
    warnings: list[str] = []
    resolve("--config", str(path), warnings=warnings)
    assert len(warnings) == 1 and "0644" in warnings[0] and f"chmod 600 {path}" in warnings[0]


def test_private_file_or_file_without_secrets_does_not_warn(tmp_path):
    warnings: list[str] = []
    resolve("--config", str(write_config(tmp_path, PROFILES, mode=0o600)), warnings=warnings)
    path = write_config(tmp_path, '[profiles.p]\nhost = "h"\nuser = "root@pam"\n', mode=0o644)
    resolve("--config", str(path), env={"PVETOP_PASSWORD": "pw"}, warnings=warnings)
    assert warnings == []


def test_repr_hides_secrets():
    settings = ConnectionSettings(hosts=(("h", 8006),), user="root@pam", token_name="t", token_value="TOPSECRET")
    password_settings = ConnectionSettings(hosts=(("h", 8006),), user="root@pam", password="HUNTER2")
    assert "TOPSECRET" not in repr(settings) and "TOPSECRET" not in str(settings)
    assert "HUNTER2" not in repr(password_settings) and "***" in repr(password_settings)


def test_settings_from_sim_info_use_the_token_and_the_sim_ca():
    info = {
        "host": "127.0.0.1",
        "port": 44321,
        "user": "root@pam",
        "password": "pw",
        "token_name": "pvetop",
        "token_value": "tok",
        "ca_file": "/tmp/ca.pem",
        "fingerprint": FP_COLONS,
    }
    settings = settings_from_sim_info(info)
    assert settings.hosts == (("127.0.0.1", 44321),)
    assert (settings.token_name, settings.token_value, settings.password) == ("pvetop", "tok", None)
    assert settings.verify == "/tmp/ca.pem"
    endpoints = [{"node": "a", "host": "127.0.0.1", "port": 44321}, {"node": "b", "host": "127.0.0.1", "port": 44322}]
    every_node = settings_from_sim_info(dict(info, endpoints=endpoints))
    assert every_node.hosts == (("127.0.0.1", 44321), ("127.0.0.1", 44322)), "the demo fails over between nodes"


def test_resolve_db_precedence(tmp_path):
    path = write_config(tmp_path, 'db = "/from/file.db"\n')
    assert resolve_db(args("--config", str(path), "--db", "/cli.db"), env={"PVETOP_DB": "/env.db"}) == "/cli.db"
    assert resolve_db(args("--config", str(path)), env={"PVETOP_DB": "/env.db"}) == "/env.db"
    assert resolve_db(args("--config", str(path)), env={}) == "/from/file.db"
    assert resolve_db(args(), env={}) is None  # the store picks its default location


def test_a_misspelt_table_is_refused_with_the_nearest_name(tmp_path):
    path = write_config(tmp_path, '[profile.home]\nhost = "h"\nuser = "root@pam"\npassword = "p"\n')
    message = error_of("--config", str(path))
    assert str(path) in message and "unknown table 'profile'" in message and "did you mean 'profiles'?" in message


def test_settings_tables_are_refused_with_where_they_go(tmp_path):
    with pytest.raises(UsageError) as caught:
        load_config(write_config(tmp_path, '[balancer]\nmode = "auto"\n'))
    assert "unknown table 'balancer'" in str(caught.value) and "pvetop settings set" in str(caught.value)


@pytest.mark.parametrize(
    "text, unknown, nearest",
    [
        ('default_profil = "p"\n[profiles.p]\n', "key 'default_profil'", "default_profile"),
        ('[profiles.p]\nhost = "h"\ntokne_value = "s"\n', "key 'tokne_value'", "token_value"),
        ('[profiles.p]\nhost = "h"\nverifyssl = false\n', "key 'verifyssl'", "verify_ssl"),
    ],
)
def test_misspelt_keys_are_refused_with_the_nearest_name(tmp_path, text, unknown, nearest):
    message = error_of("--config", str(write_config(tmp_path, text)))
    assert f"unknown {unknown}" in message and f"did you mean {nearest!r}?" in message


@pytest.mark.parametrize("command", [[], ["status"], ["migrate"]])
def test_every_connection_field_is_an_option_naming_its_variable(capsys, command):
    """One table drives the CLI: each field with an option is on every command, with its variable."""
    with pytest.raises(SystemExit):
        build_parser().parse_args([*command, "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for spec in FIELDS:
        if spec.flag is not None:
            assert spec.flag in text and f"{spec.env}," in text


@pytest.mark.parametrize("spec", [f for f in FIELDS if f.env and f.in_profile and not f.switch], ids=lambda f: f.key)
def test_each_field_is_read_from_option_variable_and_profile_in_that_order(tmp_path, spec):
    samples = {
        "host": ("cli-host", "env-host", "file-host"),
        "user": ("cli@pam", "env@pam", "file@pam"),
        "password": ("cli-pw", "env-pw", "file-pw"),
        "token_name": ("cli-token", "env-token", "file-token"),
        "token_value": ("cli-secret", "env-secret", "file-secret"),
        "verify_ssl": ("false", "false", "true"),
        "fingerprint": ("aa" * 32, "bb" * 32, "cc" * 32),
        "timeout": ("3", "4", "6"),
        "max_response_bytes": (None, "2097152", "3145728"),
    }
    cli, from_env, in_file = samples[spec.key]
    base = {"host": "h", "user": "root@pam", "password": "p"}
    if spec.key in ("token_name", "token_value"):
        base = {"host": "h", "user": "root@pam", "token_name": "t", "token_value": "s"}
    profile = dict(base, **{spec.key: in_file})
    lines = "".join(f"{k} = {v if k == 'verify_ssl' else repr(v)}\n".replace("'", '"') for k, v in profile.items())
    path = write_config(tmp_path, f"[profiles.p]\n{lines}")

    def value(*argv, env=None):
        settings = resolve("--config", str(path), *argv, env=env or {})
        return {
            "host": settings.hosts[0][0],
            "user": settings.user,
            "password": settings.password,
            "token_name": settings.token_name,
            "token_value": settings.token_value,
            "verify_ssl": str(settings.verify).lower(),
            "fingerprint": settings.fingerprint and settings.fingerprint.replace(":", "").lower(),
            "timeout": f"{settings.timeout:g}",
            "max_response_bytes": str(settings.max_response_bytes),
        }[spec.key]

    assert value() == in_file
    assert value(env={spec.env: from_env}) == from_env
    if spec.flag is not None:
        assert value(f"{spec.flag}={cli}", env={spec.env: from_env}) == cli


def test_relative_ca_path_is_relative_to_the_config_file(tmp_path):
    (tmp_path / "ca.pem").write_text("x")
    path = write_config(
        tmp_path, '[profiles.p]\nhost = "h"\nuser = "root@pam"\npassword = "p"\nverify_ssl = "ca.pem"\n'
    )
    assert resolve("--config", str(path)).verify == str(tmp_path / "ca.pem")


@pytest.mark.parametrize(
    "text, expected",
    [
        ("pve1", ("pve1", 8006)),
        ("pve1:8443", ("pve1", 8443)),
        ("10.0.0.1", ("10.0.0.1", 8006)),
        ("[fe80::1]:8007", ("fe80::1", 8007)),
        ("fe80::1", ("fe80::1", 8006)),
        ("[::1]", ("::1", 8006)),
    ],
)
def test_host_forms(text, expected):
    assert parse_host(text, source="--host") == expected


def test_fingerprint_forms():
    assert parse_fingerprint(FP, source="x") == FP_COLONS
    assert parse_fingerprint(FP_COLONS.lower(), source="x") == FP_COLONS


# ------------------------------------------------------------------ error messages


def error_of(*argv: str, env: dict | None = None) -> str:
    with pytest.raises(UsageError) as caught:
        resolve(*argv, env=env)
    return str(caught.value)


def test_missing_host_names_every_way_to_set_it():
    message = error_of(env={"PVETOP_USER": "root@pam", "PVETOP_PASSWORD": "p"})
    assert "no Proxmox VE host" in message
    assert "--host" in message and "PVETOP_HOST" in message and "host in [profiles.NAME]" in message


def test_missing_user_names_every_way_to_set_it():
    message = error_of("--host", "h", "--password", "p")
    assert "no user" in message and "--user" in message and "PVETOP_USER" in message


def test_user_without_realm():
    assert "lacks a realm" in error_of("--host", "h", "--user", "root", "--password", "p")


def test_missing_credentials_name_token_and_password_settings():
    message = error_of("--host", "h", "--user", "root@pam")
    for needle in ("--token-name", "PVETOP_TOKEN_VALUE", "PVETOP_PASSWORD", "password_command"):
        assert needle in message


def test_token_without_secret_names_the_secret_settings(tmp_path):
    path = write_config(tmp_path, '[profiles.p]\nhost = "h"\nuser = "root@pam"\ntoken_name = "pvetop"\n')
    message = error_of("--config", str(path))
    assert "root@pam!pvetop has no secret" in message
    assert "--token-value" in message and "PVETOP_TOKEN_VALUE" in message and f"[profiles.p] in {path}" in message


def test_secret_without_token_name():
    assert "without its token name" in error_of("--host", "h", "--user", "root@pam", "--token-value", "s")


def test_toml_syntax_error_names_file_and_line(tmp_path):
    path = write_config(tmp_path, '[profiles.p]\nhost = "h"\nuser = root@pam\n')
    message = error_of("--config", str(path))
    assert str(path) in message and "line 3" in message and "TOML syntax error" in message


def test_unknown_profile_key_is_named(tmp_path):
    path = write_config(tmp_path, '[profiles.p]\nhost = "h"\nverify-ssl = false\n')
    message = error_of("--config", str(path))
    assert "[profiles.p]" in message and "'verify-ssl'" in message and "verify_ssl" in message


def test_unknown_top_level_key(tmp_path):
    message = error_of("--config", str(write_config(tmp_path, 'host = "h"\n')))
    assert "unknown key 'host'" in message and "[profiles.NAME]" in message


def test_bad_port_in_profile(tmp_path):
    path = write_config(tmp_path, '[profiles.p]\nhost = "h:99999"\n')
    message = error_of("--config", str(path))
    assert "[profiles.p] host" in message and "bad port" in message and "1 to 65535" in message


def test_missing_ca_file():
    message = error_of("--host", "h", "--user", "root@pam", "--password", "p", "--verify-ssl", "/no/such/ca.pem")
    assert "--verify-ssl" in message and "/no/such/ca.pem" in message and "does not exist" in message


def test_bad_fingerprint():
    message = error_of("--host", "h", "--user", "root@pam", "--password", "p", "--fingerprint", "abc")
    assert "--fingerprint" in message and "64 hex digits" in message


def test_bad_timeout(tmp_path):
    path = write_config(tmp_path, '[profiles.p]\nhost = "h"\ntimeout = -1\n')
    assert "[profiles.p] timeout" in error_of("--config", str(path))


def test_unknown_profile_lists_the_known_ones(tmp_path):
    message = error_of("--config", str(write_config(tmp_path, PROFILES)), "--profile", "nope")
    assert "'nope' not found" in message and "home, lab" in message


def test_default_profile_must_exist(tmp_path):
    message = error_of("--config", str(write_config(tmp_path, 'default_profile = "x"\n[profiles.y]\n')))
    assert "default_profile 'x'" in message


def test_explicit_config_must_exist(tmp_path):
    assert "does not exist" in error_of("--config", str(tmp_path / "missing.toml"))


def test_default_config_location_is_read(tmp_path):
    config_dir = tmp_path / "xdg-config" / "pvetop"
    config_dir.mkdir(parents=True)
    (config_dir / "config.toml").write_text('[profiles.p]\nhost = "fromdefault"\nuser = "root@pam"\npassword = "p"\n')
    os.chmod(config_dir / "config.toml", 0o600)
    assert resolve().hosts == (("fromdefault", 8006),)


# ------------------------------------------------------------------ config file trust (as ssh)


def command_profile(tmp_path, marker, mode=0o600):
    """A profile whose password_command leaves ``marker`` behind when it runs."""
    script = tmp_path / "secret.py"
    script.write_text(f"open({str(marker)!r}, 'w').close()\nprint('pw')\n")
    text = f'[profiles.p]\nhost = "h"\nuser = "root@pam"\npassword_command = ["{sys.executable}", "{script}"]\n'
    return write_config(tmp_path, text, mode=mode)


def test_password_command_runs_from_a_private_file(tmp_path):
    marker = tmp_path / "ran"
    assert resolve("--config", str(command_profile(tmp_path, marker))).password == "pw" and marker.exists()


@pytest.mark.parametrize("mode", [0o666, 0o620, 0o602])
def test_password_command_is_refused_from_a_file_others_can_write(tmp_path, mode):
    marker = tmp_path / "ran"
    path = command_profile(tmp_path, marker, mode=mode)
    message = error_of("--config", str(path))
    assert not marker.exists(), "another user's command ran"
    assert f"{path}: [profiles.p] password_command: not run" in message and "writable by other users" in message
    assert "chmod go-w" in message and "secret.py" not in message


def test_password_command_is_refused_when_others_can_write_the_directory(tmp_path):
    directory = tmp_path / "shared"
    directory.mkdir()
    marker = tmp_path / "ran"
    path = command_profile(directory, marker)
    directory.chmod(0o777)
    message = error_of("--config", str(path))
    assert not marker.exists() and f"its directory ({directory})" in message and "0777" in message


def test_password_command_is_refused_from_a_file_owned_by_someone_else(tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    path = command_profile(tmp_path, marker)
    if os.getuid() == 0:
        os.chown(path, 4242, -1)  # root may own the file; any other user may not
    else:
        monkeypatch.setattr(os, "getuid", lambda: path.stat().st_uid + 1)  # the file is not ours
    message = error_of("--config", str(path))
    assert not marker.exists() and "belongs to another user" in message


def test_secrets_in_a_file_others_can_write_warn(tmp_path):
    warnings: list[str] = []
    path = write_config(tmp_path, PROFILES, mode=0o622)
    resolve("--config", str(path), warnings=warnings)
    assert any("writable by other users" in w and str(path) in w for w in warnings), warnings


def test_a_failing_password_command_is_named_by_its_key_not_its_command_line(tmp_path):
    text = '[profiles.p]\nhost = "h"\nuser = "root@pam"\npassword_command = "false --token=hunter2"\n'
    message = error_of("--config", str(write_config(tmp_path, text)))
    assert "[profiles.p] password_command" in message and "exit code 1" in message
    assert "hunter2" not in message and "false" not in message
