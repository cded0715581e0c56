"""Where pvetop finds its cluster: TOML profiles, PVETOP_* variables and CLI options.

Precedence is CLI option > environment variable > config-file profile, field by field, so a
profile can hold the host and token name while the secret comes from the environment.
Variables: PVETOP_HOST (host[:port], comma list), PVETOP_USER, PVETOP_PASSWORD,
PVETOP_TOKEN_NAME, PVETOP_TOKEN_VALUE, PVETOP_VERIFY_SSL (true/false/CA path),
PVETOP_FINGERPRINT, PVETOP_TIMEOUT, PVETOP_MAX_RESPONSE_BYTES, PVETOP_DB, PVETOP_READ_ONLY. Every
mistake raises ``UsageError`` naming the file, the key and the fix; secrets never reach a repr.

Config file (``user_config_dir("pvetop")/config.toml``, or ``--config PATH``)::

    default_profile = "home"
    db = "/var/lib/pvetop/pvetop.db"        # optional: rules store (PVETOP_DB, --db)

    [profiles.home]
    host = ["pve1:8006", "pve2"]            # a list fails over in order
    user = "root@pam"
    token_name = "pvetop"                   # or "root@pam!pvetop"
    token_value = "..."                     # or password / password_command
    verify_ssl = true                       # true, false, or a CA file path
    fingerprint = "AB:CD:..."               # SHA-256 pin of the API certificate
    timeout = 5                             # seconds one API request may take, in total
    max_response_bytes = 67108864           # answers larger than this are refused (64 MiB)
    read_only = true                        # no writes at all (also --read-only, PVETOP_READ_ONLY)

Other top-level tables (``[balancer]``, ``[power]``, ...) are kept raw in ``Config.sections``
for the rooms that own them.
"""

from __future__ import annotations

import os
import re
import stat
import subprocess
import sys
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from pvetop.errors import UsageError

DEFAULT_PORT = 8006
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # far above the largest real /cluster/resources (~5 MB, 4000 guests)
PASSWORD_COMMAND_TIMEOUT = 30.0

PROFILE_KEYS = frozenset(
    {
        "host",
        "user",
        "password",
        "password_command",
        "token_name",
        "token_value",
        "verify_ssl",
        "fingerprint",
        "timeout",
        "read_only",
        "max_response_bytes",
    }
)
TOP_LEVEL_SCALARS = frozenset({"default_profile", "db"})

Verify = bool | str  # True, False, or the path of a CA file/directory


def default_config_path() -> Path:
    return Path(platformdirs.user_config_dir("pvetop")) / "config.toml"


# --------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class ConnectionSettings:
    """Everything needed to reach one cluster; ``repr`` hides the secrets."""

    hosts: tuple[tuple[str, int], ...]
    user: str
    password: str | None = None
    token_name: str | None = None
    token_value: str | None = None
    verify: Verify = True
    fingerprint: str | None = None  # "AB:CD:..." SHA-256; replaces CA verification when set
    timeout: float = DEFAULT_TIMEOUT  # per request, in total (connection, headers and body)
    profile: str | None = None
    read_only: str | None = None  # what asked for read-only (flag, variable, profile key): no API writes
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES

    @property
    def uses_token(self) -> bool:
        return self.token_name is not None

    @property
    def host_labels(self) -> tuple[str, ...]:
        return tuple(format_host(host, port) for host, port in self.hosts)

    def __repr__(self) -> str:
        auth = f"token_name={self.token_name!r}, token_value='***'" if self.uses_token else "password='***'"
        return (
            f"ConnectionSettings(hosts={self.host_labels!r}, user={self.user!r}, {auth}, "
            f"verify={self.verify!r}, fingerprint={self.fingerprint!r}, timeout={self.timeout!r}, "
            f"profile={self.profile!r}, max_response_bytes={self.max_response_bytes!r})"
        )

    __str__ = __repr__


@dataclass(frozen=True)
class Profile:
    """One ``[profiles.NAME]`` table, validated; values are still unmerged with env/CLI."""

    name: str
    hosts: tuple[tuple[str, int], ...] = ()
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    password_command: str | list[str] | None = None
    token_name: str | None = None
    token_value: str | None = field(default=None, repr=False)
    verify: Verify | None = None
    fingerprint: str | None = None
    timeout: float | None = None
    read_only: bool = False
    max_response_bytes: int | None = None

    @property
    def holds_secret(self) -> bool:
        return self.password is not None or self.token_value is not None


@dataclass(frozen=True)
class Config:
    path: Path | None
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    default_profile: str | None = None
    db: str | None = None
    sections: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()

    def select_profile(self, name: str | None) -> Profile | None:
        """The named profile, else ``default_profile``, else the only one; None when there are none."""
        if name is not None:
            if name not in self.profiles:
                known = ", ".join(sorted(self.profiles)) or "none"
                raise UsageError(
                    f"profile {name!r} not found in {self._where()} (profiles: {known})",
                    hint=f"add a [profiles.{name}] table or pick one of the listed profiles",
                )
            return self.profiles[name]
        if self.default_profile is not None:
            return self.profiles[self.default_profile]
        if len(self.profiles) == 1:
            return next(iter(self.profiles.values()))
        return None

    def _where(self) -> str:
        return str(self.path) if self.path else "the config file (none found)"


# --------------------------------------------------------------------------- value parsing


def format_host(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def parse_host(text: str, *, source: str) -> tuple[str, int]:
    """``pve1``, ``pve1:8006``, ``10.0.0.1``, ``[fe80::1]:8006`` or a bare IPv6 -> (host, port)."""
    value = text.strip()
    port_text = None
    if value.startswith("["):
        host, sep, rest = value[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise UsageError(f"{source}: bad host {text!r}", hint='write an IPv6 address as "[fe80::1]:8006"')
        port_text = rest[1:] or None
    elif value.count(":") == 1:
        host, port_text = value.split(":")
    else:
        host = value  # a name, an IPv4 address or a bare IPv6 address
    if not host or any(c.isspace() or c in "/@" for c in host):
        raise UsageError(f"{source}: bad host {text!r}", hint='give HOST or HOST:PORT, e.g. "pve1.example.com:8006"')
    if port_text is None:
        return host, DEFAULT_PORT
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UsageError(f"{source}: bad port in {text!r}", hint="the port is a number from 1 to 65535 (PVE uses 8006)")
    return host, int(port_text)


def parse_hosts(value: str | list, *, source: str) -> tuple[tuple[str, int], ...]:
    """A comma-separated string or a list of strings -> ((host, port), ...) in failover order."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        raise UsageError(
            f"{source}: host must be a string or a list of strings",
            hint='write host = "pve1" or host = ["pve1:8006", "pve2:8006"]',
        )
    hosts = tuple(parse_host(item, source=source) for item in items if item.strip())
    if not hosts:
        raise UsageError(f"{source}: no host given", hint='write host = "pve1:8006"')
    return hosts


_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def parse_bool(value: bool | str, *, source: str) -> bool:
    if isinstance(value, bool):
        return value
    text = value.strip().lower() if isinstance(value, str) else ""
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise UsageError(f"{source}: must be true or false, not {value!r}")


def parse_verify(value: bool | str, *, source: str, base_dir: Path | None = None) -> Verify:
    """true/false, or a CA file (relative paths in a config file are relative to that file)."""
    if isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{source}: verify_ssl must be true, false or a CA file path")
    text = value.strip()
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    path = Path(text).expanduser()
    if base_dir is not None and not path.is_absolute():
        path = base_dir / path
    if not path.exists():
        raise UsageError(
            f"{source}: CA file {str(path)!r} does not exist",
            hint="give true, false, or the path of the cluster's CA certificate (/etc/pve/pve-root-ca.pem on a node)",
        )
    return str(path)


_HEX = re.compile(r"[0-9a-fA-F]{64}")


def parse_fingerprint(value: str, *, source: str) -> str:
    """A SHA-256 fingerprint with or without colons -> ``AB:CD:...`` (the form PVE shows)."""
    digits = value.strip().replace(":", "") if isinstance(value, str) else ""
    if not _HEX.fullmatch(digits):
        raise UsageError(
            f"{source}: fingerprint must be a SHA-256 fingerprint (64 hex digits, colons allowed)",
            hint="copy it from the node's Certificates panel or run: "
            "openssl x509 -in /etc/pve/local/pve-ssl.pem -noout -fingerprint -sha256",
        )
    digits = digits.upper()
    return ":".join(digits[i : i + 2] for i in range(0, 64, 2))


def parse_timeout(value: Any, *, source: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise UsageError(f"{source}: timeout must be a number of seconds")
    try:
        seconds = float(value)
    except ValueError:
        raise UsageError(f"{source}: timeout must be a number of seconds, not {value!r}") from None
    if not 0 < seconds <= 3600:
        raise UsageError(f"{source}: timeout must be between 0 and 3600 seconds, not {value!r}")
    return seconds


def parse_max_response_bytes(value: Any, *, source: str) -> int:
    """A byte count of at least 1 MiB (a real cluster's answers need that much)."""
    try:
        size = int(value) if not isinstance(value, bool) and isinstance(value, (int, str)) else None
    except ValueError:
        size = None
    if size is None or size < 1024 * 1024:
        raise UsageError(
            f"{source}: max_response_bytes must be a whole number of bytes, at least 1048576, not {value!r}"
        )
    return size


def split_token_id(token_name: str, user: str | None, *, source: str) -> tuple[str | None, str]:
    """Accepts ``pvetop`` or the full ``root@pam!pvetop`` -> (user, token name)."""
    if "!" not in token_name:
        return user, token_name
    token_user, _, name = token_name.rpartition("!")
    if not token_user or not name:
        raise UsageError(f"{source}: bad token id {token_name!r}", hint="write USER@REALM!TOKENID or just TOKENID")
    if user is not None and user != token_user:
        raise UsageError(
            f"{source}: token {token_name!r} belongs to {token_user}, not to user {user}",
            hint="drop the user setting or make it match the token's user",
        )
    return token_user, name


# --------------------------------------------------------------------------- config file


def load_config(path: Path | str | None = None, *, explicit: bool = False) -> Config:
    """Reads and validates the config file; a missing default file is an empty config.

    ``explicit`` says the user named the file (``--config``), so its absence is an error.
    """
    config_path = Path(path).expanduser() if path is not None else default_config_path()
    try:
        raw_bytes = config_path.read_bytes()
    except FileNotFoundError:
        if explicit:
            raise UsageError(
                f"config file {config_path} does not exist",
                hint="create it or leave out --config to use the default location",
            ) from None
        return Config(path=None)
    except OSError as exc:
        raise UsageError(f"cannot read config file {config_path}: {exc.strerror}") from None
    try:
        data = tomllib.loads(raw_bytes.decode("utf-8"))
    except UnicodeDecodeError:
        raise UsageError(f"{config_path}: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(
            f"{config_path}: TOML syntax error: {exc}",
            hint='fix the line shown; strings need quotes, e.g. host = "pve1:8006"',
        ) from None
    return _build_config(config_path, data)


def _build_config(path: Path, data: dict[str, Any]) -> Config:
    profiles_raw = data.get("profiles", {})
    if not isinstance(profiles_raw, dict):
        raise UsageError(f"{path}: 'profiles' must be a table", hint="write [profiles.NAME] tables")
    sections: dict[str, Mapping[str, Any]] = {}
    for key, value in data.items():
        if key == "profiles":
            continue
        if isinstance(value, dict):
            sections[key] = value
        elif key not in TOP_LEVEL_SCALARS:
            raise UsageError(
                f"{path}: unknown key {key!r}",
                hint=f"top-level keys are {', '.join(sorted(TOP_LEVEL_SCALARS))}; "
                "cluster settings go into [profiles.NAME]",
            )
    profiles = {name: _build_profile(path, name, table) for name, table in profiles_raw.items()}
    default_profile = data.get("default_profile")
    if default_profile is not None:
        if not isinstance(default_profile, str):
            raise UsageError(f"{path}: default_profile must be a string")
        if default_profile not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise UsageError(
                f"{path}: default_profile {default_profile!r} has no [profiles.{default_profile}] table",
                hint=f"profiles defined: {known}",
            )
    db = data.get("db")
    if db is not None and (not isinstance(db, str) or not db.strip()):
        raise UsageError(f"{path}: db must be a path or database URL string")
    warnings: tuple[str, ...] = ()
    if any(p.holds_secret for p in profiles.values()):
        warnings = _permission_warnings(path)
    return Config(
        path=path, profiles=profiles, default_profile=default_profile, db=db, sections=sections, warnings=warnings
    )


def _permission_warnings(path: Path) -> tuple[str, ...]:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return (f"warning: {path} holds secrets but its mode is {mode:04o}; run: chmod 600 {path}",)
    return ()


def _build_profile(path: Path, name: str, table: Any) -> Profile:
    where = f"{path}: [profiles.{name}]"
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table", hint=f"write [profiles.{name}] followed by key = value lines")
    unknown = sorted(set(table) - PROFILE_KEYS)
    if unknown:
        raise UsageError(f"{where}: unknown key {unknown[0]!r}", hint=f"known keys: {', '.join(sorted(PROFILE_KEYS))}")
    for key in ("user", "password", "token_name", "token_value"):
        if key in table and (not isinstance(table[key], str) or not table[key]):
            raise UsageError(f"{where} {key}: must be a non-empty string")
    command = table.get("password_command")
    if command is not None and not (
        (isinstance(command, str) and command.strip())
        or (isinstance(command, list) and command and all(isinstance(a, str) for a in command))
    ):
        raise UsageError(
            f"{where} password_command: must be a command string or a list of arguments",
            hint='e.g. password_command = "pass show proxmox/root"',
        )
    user = table.get("user")
    token_name = table.get("token_name")
    if token_name is not None:
        user, token_name = split_token_id(token_name, user, source=f"{where} token_name")
    return Profile(
        name=name,
        hosts=parse_hosts(table["host"], source=f"{where} host") if "host" in table else (),
        user=user,
        password=table.get("password"),
        password_command=command,
        token_name=token_name,
        token_value=table.get("token_value"),
        verify=(
            parse_verify(table["verify_ssl"], source=f"{where} verify_ssl", base_dir=path.parent)
            if "verify_ssl" in table
            else None
        ),
        fingerprint=parse_fingerprint(table["fingerprint"], source=f"{where} fingerprint")
        if "fingerprint" in table
        else None,
        timeout=parse_timeout(table["timeout"], source=f"{where} timeout") if "timeout" in table else None,
        read_only=parse_bool(table.get("read_only", False), source=f"{where} read_only"),
        max_response_bytes=parse_max_response_bytes(table["max_response_bytes"], source=f"{where} max_response_bytes")
        if "max_response_bytes" in table
        else None,
    )


# --------------------------------------------------------------------------- resolution


def option(args: Any, name: str) -> Any:
    """An argparse value or None; sub-parsers leave unset options out entirely (SUPPRESS)."""
    return getattr(args, name, None)


def _print_warning(message: str) -> None:
    print(f"pvetop: {message}", file=sys.stderr)


def load_config_for(args: Any) -> Config:
    """The config named by ``--config`` (must exist) or the default one (may be absent)."""
    path = option(args, "config")
    return load_config(path, explicit=path is not None)


def resolve_connection(
    args: Any, env: Mapping[str, str] = os.environ, *, warn: Callable[[str], None] = _print_warning
) -> ConnectionSettings:
    """Merges CLI options, PVETOP_* variables and the selected profile into ConnectionSettings."""
    config = load_config_for(args)
    for message in config.warnings:
        warn(message)
    profile = config.select_profile(option(args, "profile"))
    pname = f"[profiles.{profile.name}]" if profile else None

    def pick(cli_name: str, env_name: str, profile_value: Any) -> tuple[Any, str | None]:
        """(value, where it came from) by precedence; raw strings for CLI/env, parsed for profile."""
        cli_value = option(args, cli_name)
        if cli_value is not None:
            return cli_value, "--" + cli_name.replace("_", "-")
        if env.get(env_name):
            return env[env_name], env_name
        return profile_value, None

    hosts_value, source = pick("host", "PVETOP_HOST", profile.hosts if profile else ())
    hosts = parse_hosts(hosts_value, source=source) if source else hosts_value
    if not hosts:
        raise UsageError(
            "no Proxmox VE host given", hint=_missing_hint("--host HOST[:PORT]", "PVETOP_HOST", "host", config, pname)
        )

    user_value, user_source = pick("user", "PVETOP_USER", profile.user if profile else None)
    token_value_raw, token_source = pick("token_name", "PVETOP_TOKEN_NAME", profile.token_name if profile else None)
    token_name = token_value_raw
    if token_value_raw is not None:
        user_value, token_name = split_token_id(
            token_value_raw, user_value, source=token_source or f"{config.path} {pname} token_name"
        )
    if not user_value:
        raise UsageError("no user given", hint=_missing_hint("--user USER@REALM", "PVETOP_USER", "user", config, pname))
    if "@" not in user_value:
        raise UsageError(
            f"{user_source or f'{config.path} {pname} user'}: user {user_value!r} lacks a realm",
            hint="write USER@REALM, e.g. root@pam",
        )

    token_secret, secret_source = pick("token_value", "PVETOP_TOKEN_VALUE", profile.token_value if profile else None)
    password = None
    if token_name is not None:
        if not token_secret:
            raise UsageError(
                f"API token {user_value}!{token_name} has no secret",
                hint=_missing_hint("--token-value SECRET", "PVETOP_TOKEN_VALUE", "token_value", config, pname),
            )
    elif token_secret:
        raise UsageError(
            "a token secret was given without its token name",
            hint=_missing_hint("--token-name NAME", "PVETOP_TOKEN_NAME", "token_name", config, pname),
        )
    else:
        password, secret_source = pick("password", "PVETOP_PASSWORD", profile.password if profile else None)
        if password is None and profile is not None and profile.password_command is not None:
            password = run_password_command(profile.password_command, source=f"{config.path} {pname} password_command")
        if not password:
            raise UsageError(
                f"no credentials for {user_value}",
                hint="give an API token (--token-name and --token-value, PVETOP_TOKEN_NAME and PVETOP_TOKEN_VALUE, "
                "or token_name and token_value in a config profile) or a password (PVETOP_PASSWORD, "
                "--password, or password / password_command in a config profile)",
            )

    if secret_source in ("--password", "--token-value"):
        variable = "PVETOP_PASSWORD" if secret_source == "--password" else "PVETOP_TOKEN_VALUE"
        warn(
            f"warning: {secret_source} on the command line is visible to other local users (ps, /proc/PID/cmdline); "
            f"prefer {variable} or a config profile"
        )

    fingerprint_value, fp_source = pick("fingerprint", "PVETOP_FINGERPRINT", profile.fingerprint if profile else None)
    fingerprint = parse_fingerprint(fingerprint_value, source=fp_source) if fp_source else fingerprint_value
    verify_value, verify_source = pick("verify_ssl", "PVETOP_VERIFY_SSL", profile.verify if profile else None)
    verify = parse_verify(verify_value, source=verify_source) if verify_source else verify_value
    timeout_value, timeout_source = pick("timeout", "PVETOP_TIMEOUT", profile.timeout if profile else None)
    timeout = parse_timeout(timeout_value, source=timeout_source) if timeout_source else timeout_value
    cap_value, cap_source = pick(
        "max_response_bytes", "PVETOP_MAX_RESPONSE_BYTES", profile.max_response_bytes if profile else None
    )
    max_response_bytes = parse_max_response_bytes(cap_value, source=cap_source) if cap_source else cap_value

    return ConnectionSettings(
        hosts=hosts,
        user=user_value,
        password=password,
        token_name=token_name,
        token_value=token_secret if token_name is not None else None,
        verify=True if verify is None else verify,
        fingerprint=fingerprint,
        timeout=DEFAULT_TIMEOUT if timeout is None else timeout,
        profile=profile.name if profile else None,
        read_only=read_only_source(args, env, config),
        max_response_bytes=DEFAULT_MAX_RESPONSE_BYTES if max_response_bytes is None else max_response_bytes,
    )


def read_only_source(args: Any, env: Mapping[str, str] = os.environ, config: Config | None = None) -> str | None:
    """What puts pvetop in read-only mode (``--read-only``, ``PVETOP_READ_ONLY``, a profile's
    ``read_only = true``), or None. Any one of them is enough: none can switch another off."""
    if option(args, "read_only"):
        return "--read-only"
    if env.get("PVETOP_READ_ONLY") and parse_bool(env["PVETOP_READ_ONLY"], source="PVETOP_READ_ONLY"):
        return "PVETOP_READ_ONLY"
    config = config if config is not None else load_config_for(args)
    profile = config.select_profile(option(args, "profile"))
    if profile is not None and profile.read_only:
        return f"read_only in [profiles.{profile.name}] of {config.path}"
    return None


def _missing_hint(cli: str, env_name: str, key: str, config: Config, pname: str | None) -> str:
    where = f"{pname} in {config.path}" if pname else f"[profiles.NAME] in {config.path or default_config_path()}"
    return f"pass {cli}, set {env_name}, or set {key} in {where}"


def run_password_command(command: str | list[str], *, source: str) -> str:
    """Runs the user's secret helper; the password is the first line of its stdout."""
    shown = command if isinstance(command, str) else " ".join(command)
    try:
        result = subprocess.run(
            command,
            shell=isinstance(command, str),
            capture_output=True,
            text=True,
            timeout=PASSWORD_COMMAND_TIMEOUT,
            stdin=subprocess.DEVNULL,
        )
    except FileNotFoundError:
        raise UsageError(f"{source}: command not found: {shown!r}") from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"{source}: {shown!r} did not finish within {PASSWORD_COMMAND_TIMEOUT:.0f} s") from None
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no error output"])[-1]
        raise UsageError(f"{source}: {shown!r} failed with exit code {result.returncode}: {detail}")
    lines = result.stdout.splitlines()
    password = lines[0].strip() if lines else ""
    if not password:
        raise UsageError(
            f"{source}: {shown!r} printed no password", hint="it must print the password on its first line"
        )
    return password


def resolve_db(args: Any, env: Mapping[str, str] = os.environ) -> str | None:
    """Rules store location: --db > PVETOP_DB > ``db`` in the config file; None lets the store
    use its default (``pvetop.store.location.default_path()``)."""
    cli_value = option(args, "db")
    if cli_value:
        return cli_value
    if env.get("PVETOP_DB"):
        return env["PVETOP_DB"]
    return load_config_for(args).db


def settings_from_sim_info(info: Mapping[str, Any]) -> ConnectionSettings:
    """Connection settings for a running simulator (``pvetop --demo``): token auth, its own CA,
    and every node's endpoint (first node first) so the client fails over when a node goes down."""
    token_name = info.get("token_name")
    endpoints = info.get("endpoints") or [info]
    return ConnectionSettings(
        hosts=tuple((str(e["host"]), int(e["port"])) for e in endpoints),
        user=str(info["user"]),
        password=None if token_name else info.get("password"),
        token_name=token_name or None,
        token_value=info.get("token_value") if token_name else None,
        verify=str(info["ca_file"]) if info.get("ca_file") else True,
        timeout=float(info.get("timeout", DEFAULT_TIMEOUT)),
        profile="demo",
    )
