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

    [keys]                                  # the dashboard's keys by binding id (see `?`)
    "app.filter" = "slash,f3,ctrl+f"

Every setting is declared once in ``FIELDS``. Unknown tables and keys are refused, with the
nearest known name ("did you mean 'profiles'?"), so a typo never silently drops a profile.
A file that other users can change may not name a command to run (``password_command``).
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
from difflib import get_close_matches
from pathlib import Path
from typing import Any

import platformdirs

from pvetop.errors import UsageError

DEFAULT_PORT = 8006
DEFAULT_TIMEOUT = 5.0
DEFAULT_MAX_RESPONSE_BYTES = 64 * 1024 * 1024  # far above the largest real /cluster/resources (~5 MB, 4000 guests)
PASSWORD_COMMAND_TIMEOUT = 30.0

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
    """One ``[profiles.NAME]`` table, validated: parsed values by key (see ``FIELDS``), still
    unmerged with the environment and the command line."""

    name: str
    path: Path
    values: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @property
    def where(self) -> str:
        """How errors name the table."""
        return f"{self.path}: [profiles.{self.name}]"

    @property
    def holds_secret(self) -> bool:
        return any(f.secret and f.key in self.values for f in FIELDS)

    @property
    def read_only(self) -> bool:
        return bool(self.values.get("read_only", False))


@dataclass(frozen=True)
class Config:
    path: Path | None
    profiles: Mapping[str, Profile] = field(default_factory=dict)
    default_profile: str | None = None
    db: str | None = None
    keys: Mapping[str, str] = field(default_factory=dict)  # binding id -> keys (the dashboard's [keys] table)
    warnings: tuple[str, ...] = ()
    untrusted: str | None = None  # why the file may not name a command to run (see trust_problem)

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


def _text(value: Any, source: str) -> str:
    if not isinstance(value, str) or not value:
        raise UsageError(f"{source}: must be a non-empty string")
    return value


def _location(value: Any, source: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise UsageError(f"{source}: must be a path or database URL string")
    return value


def _command(value: Any, source: str) -> str | list[str]:
    if (isinstance(value, str) and value.strip()) or (
        isinstance(value, list) and value and all(isinstance(a, str) for a in value)
    ):
        return value
    raise UsageError(
        f"{source}: must be a command string or a list of arguments",
        hint='e.g. password_command = "pass show proxmox/root"',
    )


# --------------------------------------------------------------------------- the connection fields


@dataclass(frozen=True)
class Field:
    """One connection setting, declared once: its command-line option, environment variable and
    config-file key, and how a given value is read. The CLI options, profile parsing and the
    precedence (option > variable > profile, field by field) all come from ``FIELDS``."""

    key: str  # the key in a [profiles.NAME] table (top-level for ``db``); the argparse dest
    parse: Callable[[Any, str, Path | None], Any]  # (raw value, where it was given, config dir)
    help: str
    metavar: str = ""
    flag: str | None = None  # None: config file only
    env: str | None = None
    secret: bool = False  # a file holding it should be private
    switch: bool = False  # a flag without a value (store_true)
    in_profile: bool = True  # False: a top-level key of the config file


FIELDS: tuple[Field, ...] = (
    Field(
        "host",
        lambda v, source, _: parse_hosts(v, source=source),
        "API host; several as a comma-separated list fail over in order",
        "HOST[:PORT]",
        "--host",
        "PVETOP_HOST",
    ),
    Field("user", lambda v, source, _: _text(v, source), "user", "USER@REALM", "--user", "PVETOP_USER"),
    Field(
        "password",
        lambda v, source, _: _text(v, source),
        "password (prefer the variable or password_command: options are visible to other local users)",
        "PASSWORD",
        "--password",
        "PVETOP_PASSWORD",
        secret=True,
    ),
    Field("password_command", lambda v, source, _: _command(v, source), "a command printing the password"),
    Field(
        "token_name",
        lambda v, source, _: _text(v, source),
        "API token id, e.g. pvetop or root@pam!pvetop",
        "NAME",
        "--token-name",
        "PVETOP_TOKEN_NAME",
    ),
    Field(
        "token_value",
        lambda v, source, _: _text(v, source),
        "API token secret",
        "SECRET",
        "--token-value",
        "PVETOP_TOKEN_VALUE",
        secret=True,
    ),
    Field(
        "verify_ssl",
        lambda v, source, base_dir: parse_verify(v, source=source, base_dir=base_dir),
        "verify TLS: true (default), false, or a CA file",
        "true|false|CA_FILE",
        "--verify-ssl",
        "PVETOP_VERIFY_SSL",
    ),
    Field(
        "fingerprint",
        lambda v, source, _: parse_fingerprint(v, source=source),
        "pin the API certificate by its SHA-256 fingerprint (self-signed clusters)",
        "SHA256",
        "--fingerprint",
        "PVETOP_FINGERPRINT",
    ),
    Field(
        "timeout",
        lambda v, source, _: parse_timeout(v, source=source),
        f"API request timeout (default {DEFAULT_TIMEOUT:g})",
        "SECONDS",
        "--timeout",
        "PVETOP_TIMEOUT",
    ),
    Field(
        "max_response_bytes",
        lambda v, source, _: parse_max_response_bytes(v, source=source),
        "answers larger than this many bytes are refused (default 64 MiB)",
        env="PVETOP_MAX_RESPONSE_BYTES",
    ),
    Field(
        "read_only",
        lambda v, source, _: parse_bool(v, source=source),
        "no writes at all, to the cluster or the rules store: look, don't touch",
        flag="--read-only",
        env="PVETOP_READ_ONLY",
        switch=True,
    ),
    Field(
        "db",
        lambda v, source, _: _location(v, source),
        "rules store: SQLite path or database URL",
        "PATH|URL",
        "--db",
        "PVETOP_DB",
        in_profile=False,
    ),
)
FIELD = {f.key: f for f in FIELDS}
PROFILE_KEYS = tuple(f.key for f in FIELDS if f.in_profile)
TOP_LEVEL_KEYS = ("default_profile", *(f.key for f in FIELDS if not f.in_profile))
TABLES = ("profiles", "keys")


def _unknown(kind: str, name: str, known: tuple[str, ...], source: str, hint: str) -> UsageError:
    """An unknown key or table, with the nearest known name when there is one."""
    close = get_close_matches(name, known, n=1, cutoff=0.6)
    suggestion = f"did you mean {close[0]!r}? " if close else ""
    return UsageError(f"{source}: unknown {kind} {name!r}", hint=f"{suggestion}{hint}")


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
    for key, value in data.items():
        if isinstance(value, dict) and key not in TABLES:
            raise _unknown(
                "table",
                key,
                TABLES,
                str(path),
                hint="connection settings go into [profiles.NAME] tables; balancer and power settings are kept "
                "per cluster in the rules store: pvetop settings set KEY VALUE",
            )
        if not isinstance(value, dict) and key not in TOP_LEVEL_KEYS:
            raise _unknown(
                "key",
                key,
                TOP_LEVEL_KEYS + TABLES,
                str(path),
                hint=f"top-level keys are {', '.join(TOP_LEVEL_KEYS)}; cluster settings go into [profiles.NAME]",
            )
    profiles_raw = data.get("profiles", {})
    if not isinstance(profiles_raw, dict):
        raise UsageError(f"{path}: 'profiles' must be a table", hint="write [profiles.NAME] tables")
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
    db = FIELD["db"].parse(data["db"], f"{path}: db", path.parent) if "db" in data else None
    keys = data.get("keys", {})
    for binding_id, value in keys.items():
        if not isinstance(value, str):
            raise UsageError(f'{path}: [keys] {binding_id} must be a string of keys, e.g. "f2" or "a,ctrl+x"')
    untrusted = trust_problem(path)
    warnings: list[str] = []
    if any(p.holds_secret for p in profiles.values()):
        if untrusted:
            warnings.append(f"warning: {path} holds secrets but {untrusted}: {TRUST_FIX}")
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            warnings.append(f"warning: {path} holds secrets but its mode is {mode:04o}; run: chmod 600 {path}")
    return Config(
        path=path,
        profiles=profiles,
        default_profile=default_profile,
        db=db,
        keys=keys,
        warnings=tuple(warnings),
        untrusted=untrusted,
    )


TRUST_FIX = "only its owner (you or root) may change the file and its directory (chmod go-w, chown)"


def trust_problem(path: Path) -> str | None:
    """Why the config file cannot be trusted to name commands to run, or None.

    Like ssh with its own files: the file and its directory must belong to the current user (or
    root) and be writable by nobody else, or another local user could make pvetop run their
    command (``password_command``) or send the token to their host.
    """
    if not hasattr(os, "getuid"):  # no POSIX owners and modes to judge
        return None
    me = os.getuid()
    for what, target in (("the file", path), ("its directory", path.resolve().parent)):
        info = target.stat()
        if info.st_uid not in (me, 0):
            return f"{what} ({target}) belongs to another user (uid {info.st_uid})"
        if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return f"{what} ({target}) is writable by other users (mode {stat.S_IMODE(info.st_mode):04o})"
    return None


def _build_profile(path: Path, name: str, table: Any) -> Profile:
    where = f"{path}: [profiles.{name}]"
    if not isinstance(table, dict):
        raise UsageError(f"{where} must be a table", hint=f"write [profiles.{name}] followed by key = value lines")
    for key in table:
        if key not in PROFILE_KEYS:
            raise _unknown("key", key, PROFILE_KEYS, where, hint=f"known keys: {', '.join(sorted(PROFILE_KEYS))}")
    values = {key: FIELD[key].parse(value, f"{where} {key}", path.parent) for key, value in table.items()}
    if "token_name" in values:
        user, values["token_name"] = split_token_id(
            values["token_name"], values.get("user"), source=f"{where} token_name"
        )
        if user is not None:
            values["user"] = user
    return Profile(name=name, path=path, values=values)


# --------------------------------------------------------------------------- resolution


def option(args: Any, name: str, default: Any = None) -> Any:
    """An argparse value, else ``default``; sub-parsers leave unset options out entirely (SUPPRESS)."""
    value = getattr(args, name.replace("-", "_"), None)
    return default if value is None else value


def _print_warning(message: str) -> None:
    print(f"pvetop: {message}", file=sys.stderr)


def load_config_for(args: Any) -> Config:
    """The config named by ``--config`` (must exist) or the default one (may be absent)."""
    path = option(args, "config")
    return load_config(path, explicit=path is not None)


def pick(key: str, args: Any, env: Mapping[str, str], profile: Profile | None) -> tuple[Any, str | None]:
    """One field's value and where it came from, by precedence: option > variable > profile.
    (None, None) when it is given nowhere. Every value is parsed, whatever its source."""
    spec = FIELD[key]
    if spec.flag is not None and option(args, key) is not None:
        return spec.parse(option(args, key), spec.flag, None), spec.flag
    if spec.env is not None and env.get(spec.env):
        return spec.parse(env[spec.env], spec.env, None), spec.env
    if profile is not None and key in profile.values:
        return profile.values[key], f"{profile.where} {key}"
    return None, None


def resolve_connection(
    args: Any, env: Mapping[str, str] = os.environ, *, warn: Callable[[str], None] = _print_warning
) -> ConnectionSettings:
    """Merges CLI options, PVETOP_* variables and the selected profile into ConnectionSettings."""
    config = load_config_for(args)
    for message in config.warnings:
        warn(message)
    profile = config.select_profile(option(args, "profile"))

    def missing(key: str) -> str:
        spec = FIELD[key]
        table = f"[profiles.{profile.name}]" if profile else "[profiles.NAME]"
        where = f"{table} in {config.path or default_config_path()}"
        return f"pass {spec.flag} {spec.metavar}, set {spec.env}, or set {key} in {where}"

    hosts, _ = pick("host", args, env, profile)
    if not hosts:
        raise UsageError("no Proxmox VE host given", hint=missing("host"))

    user, user_source = pick("user", args, env, profile)
    token_name, token_source = pick("token_name", args, env, profile)
    if token_name is not None and token_source is not None:
        user, token_name = split_token_id(token_name, user, source=token_source)
    if not user:
        raise UsageError("no user given", hint=missing("user"))
    if "@" not in user:
        raise UsageError(f"{user_source}: user {user!r} lacks a realm", hint="write USER@REALM, e.g. root@pam")

    token_secret, secret_source = pick("token_value", args, env, profile)
    password = None
    if token_name is not None:
        if not token_secret:
            raise UsageError(f"API token {user}!{token_name} has no secret", hint=missing("token_value"))
    elif token_secret:
        raise UsageError("a token secret was given without its token name", hint=missing("token_name"))
    else:
        password, secret_source = pick("password", args, env, profile)
        if password is None and profile is not None and "password_command" in profile.values:
            source = f"{profile.where} password_command"
            if config.untrusted:
                raise UsageError(f"{source}: not run, because {config.untrusted}", hint=TRUST_FIX)
            password = run_password_command(profile.values["password_command"], source=source)
        if not password:
            raise UsageError(
                f"no credentials for {user}",
                hint="give an API token (--token-name and --token-value, PVETOP_TOKEN_NAME and PVETOP_TOKEN_VALUE, "
                "or token_name and token_value in a config profile) or a password (PVETOP_PASSWORD, "
                "--password, or password / password_command in a config profile)",
            )

    if secret_source in (FIELD["password"].flag, FIELD["token_value"].flag):
        variable = FIELD["password"].env if secret_source == FIELD["password"].flag else FIELD["token_value"].env
        warn(
            f"warning: {secret_source} on the command line is visible to other local users (ps, /proc/PID/cmdline); "
            f"prefer {variable} or a config profile"
        )

    fingerprint, _ = pick("fingerprint", args, env, profile)
    verify, _ = pick("verify_ssl", args, env, profile)
    timeout, _ = pick("timeout", args, env, profile)
    max_response_bytes, _ = pick("max_response_bytes", args, env, profile)
    return ConnectionSettings(
        hosts=hosts,
        user=user,
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
    spec = FIELD["read_only"]
    if option(args, "read_only"):
        return spec.flag
    if spec.env is not None and env.get(spec.env) and spec.parse(env[spec.env], spec.env, None):
        return spec.env
    config = config if config is not None else load_config_for(args)
    profile = config.select_profile(option(args, "profile"))
    if profile is not None and profile.read_only:
        return f"read_only in [profiles.{profile.name}] of {config.path}"
    return None


def run_password_command(command: str | list[str], *, source: str) -> str:
    """Runs the user's secret helper; the password is the first line of its stdout.

    Errors name the config key, never the command line: it may hold a secret of its own."""
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
        raise UsageError(f"{source}: the command was not found") from None
    except subprocess.TimeoutExpired:
        raise UsageError(f"{source}: the command did not finish within {PASSWORD_COMMAND_TIMEOUT:.0f} s") from None
    if result.returncode != 0:
        detail = (result.stderr.strip().splitlines() or ["no error output"])[-1]
        raise UsageError(f"{source}: the command failed with exit code {result.returncode}: {detail}")
    lines = result.stdout.splitlines()
    password = lines[0].strip() if lines else ""
    if not password:
        raise UsageError(
            f"{source}: the command printed no password", hint="it must print the password on its first line"
        )
    return password


def resolve_db(args: Any, env: Mapping[str, str] = os.environ) -> str | None:
    """Rules store location: --db > PVETOP_DB > ``db`` in the config file; None lets the store
    use its default (``pvetop.store.location.default_path()``)."""
    location, source = pick("db", args, env, None)
    return location if source is not None else load_config_for(args).db


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
