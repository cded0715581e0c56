"""``PveClient``: the one door to a Proxmox VE API (proxmoxer underneath).

- Auth: API token, or user/password with a ticket renewed halfway through its 2 h life.
- TLS: verified by default; a CA file; or a SHA-256 fingerprint pin for self-signed clusters;
  ``verify=False`` only when asked, and then ``insecure_warning`` says so for the UI.
- Several hosts fail over in order when one does not answer; the working one is remembered.
- Every failure becomes ``ConnectionFailed`` (cannot reach / authenticate) or ``ApiError`` (PVE
  refused, its text kept) with one clear line.
- ``fetch_snapshot`` costs exactly 2 requests whatever the cluster's size; options, HA rules and corosync votes
  change rarely and are refreshed by ``refresh_slow_data`` (3 more requests) on the caller's own
  cadence — ``slow_data_due`` says when, every ``slow_data_every`` snapshots.
"""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from proxmoxer.backends.https import JsonSerializer, ProxmoxHTTPApiTokenAuth
from proxmoxer.core import ProxmoxResource, ResourceException
from urllib3.exceptions import NewConnectionError

from pvetop.config import ConnectionSettings, format_host
from pvetop.errors import ApiError, ConnectionFailed, PvetopError, ReadOnlyRefused
from pvetop.model import ClusterSnapshot, CrsOptions, Guest, HaRule
from pvetop.pve.parse import MalformedAnswer, build_snapshot, parse_config_nodes, parse_crs, parse_ha_rules
from pvetop.pve.transport import (
    CountingAdapter,
    LoginRejected,
    RequestCounter,
    TicketAuth,
    build_sessions,
    silence_insecure_request_warnings,
)

DEFAULT_SLOW_DATA_EVERY = 30
SLOW_DATA_TICKET_MARGIN = 600.0  # renew the ticket on the slow cadence, well before it is due

INSECURE_WARNING = (
    "TLS verification is OFF (verify_ssl = false): anyone on the network path can read "
    "the credentials and forge cluster data. Use a CA file or --fingerprint instead."
)
TLS_FIX = (
    "give the cluster's CA with --verify-ssl CA_FILE (/etc/pve/pve-root-ca.pem on a node) or pin "
    "the certificate with --fingerprint SHA256"
)


class PveClient:
    """A connection to one cluster. Thread-safe enough for one poller plus detail-pane calls."""

    def __init__(
        self,
        settings: ConnectionSettings,
        *,
        slow_data_every: int = DEFAULT_SLOW_DATA_EVERY,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Builds sessions only; ``connect`` (or the first call) does the network part."""
        self.settings = settings
        self.slow_data_every = slow_data_every
        self._clock = clock
        self._counter = RequestCounter()
        self._adapter = CountingAdapter(self._counter, settings.fingerprint)
        self._verify: bool | str = False if settings.fingerprint else settings.verify
        if self._verify is False:
            silence_insecure_request_warnings()
        self._ticket_auth: TicketAuth | None = None
        if settings.uses_token:
            auth = ProxmoxHTTPApiTokenAuth(
                settings.user,
                settings.token_name,
                settings.token_value,
                verify_ssl=self._verify,
                timeout=settings.timeout,
            )
            self._session, _ = build_sessions(self._adapter, auth)
        else:
            self._session, ticket_session = build_sessions(self._adapter, None)
            self._ticket_auth = TicketAuth(
                settings.user,
                settings.password or "",
                ticket_session,
                timeout=settings.timeout,
                verify_ssl=self._verify,
            )
            self._session.auth = self._ticket_auth
        serializer = JsonSerializer()
        self._base_urls = [_base_url(host, port) for host, port in settings.hosts]
        self._roots = [
            ProxmoxResource(base_url=url, session=self._session, serializer=serializer) for url in self._base_urls
        ]
        self._active = 0
        self._lock = threading.Lock()
        self._crs = CrsOptions()
        self._ha_rules: tuple[HaRule, ...] = ()
        self._votes: dict[str, int] = {}
        self._snapshots_since_slow: int | None = None  # None: slow data never fetched
        self.version: dict[str, Any] = {}

    # ------------------------------------------------------------------ connecting

    @classmethod
    def connect(cls, settings: ConnectionSettings, **kwargs: Any) -> PveClient:
        """A client that has proven it can talk to the cluster: ``GET /version``, then the slow data."""
        client = cls(settings, **kwargs)
        try:
            client.version = client._check_version()
            client.refresh_slow_data()
        except BaseException:
            client.close()
            raise
        return client

    def _check_version(self) -> dict[str, Any]:
        try:
            version = self.get("version")
        except ApiError as exc:  # answered, but not like PVE: a wrong port or another service
            raise ConnectionFailed(
                f"{self.active_host} does not answer like a Proxmox VE API: {exc.message}",
                hint="check the host and port (PVE listens on 8006)",
            ) from None
        if not isinstance(version, dict) or "version" not in version:
            raise ConnectionFailed(
                f"{self.active_host} does not answer like a Proxmox VE API (GET /version)",
                hint="check the host and port (PVE listens on 8006)",
            )
        return version

    @property
    def request_count(self) -> int:
        """HTTP requests sent so far, ticket logins included."""
        return self._counter.value

    @property
    def active_host(self) -> str:
        host, port = self.settings.hosts[self._active]
        return format_host(host, port)

    @property
    def insecure_warning(self) -> str | None:
        """Text for the UI when TLS is not verified at all (no CA, no pin)."""
        return INSECURE_WARNING if self._verify is False and not self.settings.fingerprint else None

    def close(self) -> None:
        self._session.close()
        self._adapter.close()

    def __enter__(self) -> PveClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PveClient({self.active_host}, user={self.settings.user!r})"

    # ------------------------------------------------------------------ raw calls

    def get(self, path: str, **params: Any) -> Any:
        return self._call("GET", path, params)

    def post(self, path: str, **data: Any) -> Any:
        return self._call("POST", path, data)

    def put(self, path: str, **data: Any) -> Any:
        return self._call("PUT", path, data)

    def delete(self, path: str, **params: Any) -> Any:
        return self._call("DELETE", path, params)

    def _call(self, method: str, path: str, args: dict[str, Any]) -> Any:
        """One API call on the active host, failing over to the next hosts when it does not answer.

        Writes only fail over when the connection was never established, so a POST that may have
        reached a node is not sent twice.
        """
        path = path.strip("/")
        if method != "GET" and self.settings.read_only:
            raise ReadOnlyRefused(f"read-only mode ({self.settings.read_only}): {method} /{path} not sent")
        start = self._active
        failures: list[str] = []
        for offset in range(len(self._roots)):
            index = (start + offset) % len(self._roots)
            try:
                self._ensure_ticket(index)
                result = self._send(index, method, path, args)
            except _HostDown as down:
                failures.append(down.detail)
                if method != "GET" and not down.before_connect:
                    break
                continue
            if index != self._active:
                self._active = index
            return result
        raise _unreachable(failures, write=method != "GET")

    def get_from_host(self, index: int, path: str, **params: Any) -> Any:
        """GET on one configured host only, without failing over: asks "does this endpoint answer?"."""
        try:
            self._ensure_ticket(index)
            return self._send(index, "GET", path.strip("/"), params)
        except _HostDown as down:
            raise _unreachable([down.detail], write=False) from None

    def _send(self, index: int, method: str, path: str, args: dict[str, Any]) -> Any:
        resource = self._roots[index](path) if path else self._roots[index]
        send = getattr(resource, method.lower())  # proxmoxer's get/post/put/delete
        payload = {k: _wire_value(v) for k, v in args.items() if v is not None}
        try:
            try:
                result = send(**payload)
            except ResourceException as exc:
                if exc.status_code != 401 or self._ticket_auth is None:
                    raise
                self._ticket_auth.renew()  # expired ticket (e.g. after a suspend): log in again, retry once
                result = send(**payload)
        except ResourceException as exc:
            raise self._api_error(exc, method, path, index) from None
        except LoginRejected as exc:
            raise self._login_error(exc, index) from None
        except requests.RequestException as exc:
            raise self._transport_error(exc, index, method, path) from None
        if isinstance(result, dict) and set(result) == {"errors"} and isinstance(result["errors"], bytes):
            raise ApiError(
                200, f"{method} /{path} on {self._label(index)}: the answer is not JSON (is this a Proxmox VE API?)"
            )
        return result

    def _ensure_ticket(self, index: int) -> None:
        auth = self._ticket_auth
        if auth is None:
            return
        try:
            if auth.ticket is None or auth.base_url != self._base_urls[index]:
                auth.ensure(self._base_urls[index])
            auth.renew_if_due()
        except LoginRejected as exc:
            raise self._login_error(exc, index) from None
        except requests.RequestException as exc:
            raise self._transport_error(exc, index, "POST", "access/ticket") from None

    # ------------------------------------------------------------------ error mapping

    def _label(self, index: int) -> str:
        host, port = self.settings.hosts[index]
        return format_host(host, port)

    def _login_error(self, exc: LoginRejected, index: int) -> ConnectionFailed:
        return ConnectionFailed(
            f"login as {self.settings.user} on {self._label(index)} failed: {exc.status} {exc.reason}",
            hint="check the user (USER@REALM) and the password",
        )

    def _api_error(self, exc: ResourceException, method: str, path: str, index: int) -> PvetopError:
        reason = str(exc.content or exc.status_message or "").strip()
        errors = exc.errors if isinstance(exc.errors, dict) else {}
        if exc.status_code == 401:
            if self.settings.uses_token:
                return ConnectionFailed(
                    f"API token {self.settings.user}!{self.settings.token_name} was refused by "
                    f"{self._label(index)}: 401 {reason}",
                    hint="check the token id and secret (Datacenter > Permissions > API Tokens)",
                )
            return ConnectionFailed(
                f"{self._label(index)} refused the login ticket: 401 {reason}", hint="check the user and password"
            )
        detail = "; ".join(f"{k}: {str(v).strip()}" for k, v in errors.items())
        message = f"{method} /{path}: {exc.status_code} {reason}" + (f" ({detail})" if detail else "")
        hint = None
        if exc.status_code == 403:
            hint = "the user or token lacks a privilege (pvetop needs Sys.Audit, VM.Audit, VM.Migrate, Sys.PowerMgmt)"
        return ApiError(exc.status_code, message, errors=errors, hint=hint)

    def _transport_error(self, exc: requests.RequestException, index: int, method: str, path: str) -> Exception:
        """TLS problems are final (another host will not fix them); the rest means 'host down'."""
        label = self._label(index)
        if isinstance(exc, requests.exceptions.SSLError):
            text = _innermost(exc)
            mismatch = re.search(r'Expected "?([0-9a-fA-F:]+)"?,? got "?([0-9a-fA-F:]+)"?', text)
            if mismatch:
                return ConnectionFailed(
                    f"certificate of {label} does not match the pinned fingerprint: expected "
                    f"{_colon_hex(mismatch.group(1))}, presented {_colon_hex(mismatch.group(2))}",
                    hint="if the node's certificate was renewed on purpose, pin the new fingerprint with --fingerprint",
                )
            if "certificate verify failed" not in text:
                return ConnectionFailed(
                    f"TLS handshake with {label} failed: {text}",
                    hint="is this the Proxmox VE API port (HTTPS, 8006 by default)?",
                )
            presented = presented_fingerprint(*self.settings.hosts[index], timeout=self.settings.timeout)
            seen = f" (it presents SHA-256 fingerprint {presented})" if presented else ""
            return ConnectionFailed(
                f"TLS verification of {label} failed: {_short_ssl_reason(text)}{seen}", hint=TLS_FIX
            )
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            return _HostDown(
                f"{label}: no answer within {self.settings.timeout:g} s (connect timeout)", before_connect=True
            )
        if isinstance(exc, requests.exceptions.Timeout):
            return _HostDown(
                f"{label}: {method} /{path} got no answer within {self.settings.timeout:g} s (timeout)",
                before_connect=False,
            )
        if isinstance(exc, requests.exceptions.ConnectionError):
            return _HostDown(f"{label}: {_connection_reason(exc)}", before_connect=_never_connected(exc))
        return ConnectionFailed(f"{label}: {type(exc).__name__}: {_innermost(exc)}")

    # ------------------------------------------------------------------ snapshot

    @property
    def slow_data_due(self) -> bool:
        """True when options and HA rules should be refreshed (never fetched, or N snapshots old)."""
        return self._snapshots_since_slow is None or self._snapshots_since_slow >= self.slow_data_every

    @property
    def crs(self) -> CrsOptions:
        return self._crs

    @property
    def ha_rules(self) -> tuple[HaRule, ...]:
        return self._ha_rules

    def refresh_slow_data(self) -> int:
        """Options, HA rules and corosync votes into the cache (3 requests); returns requests used.

        ``GET /cluster/options`` (crs), ``GET /cluster/ha/rules`` (PVE < 9 has none: 404/501 means
        no rules) and ``GET /cluster/config/nodes`` (votes; a standalone node has no corosync
        config and answers an error: every node then counts 1). A ticket getting old is renewed
        here too, so the per-refresh path stays at 2 requests.
        """
        before = self.request_count
        if self._ticket_auth is not None:
            self._ticket_auth.renew_if_due(early=SLOW_DATA_TICKET_MARGIN)
        try:
            crs = parse_crs(self.get("cluster/options"))
            rules = parse_ha_rules(self._get_optional("cluster/ha/rules", (404, 501), []))
            votes = parse_config_nodes(self._get_optional("cluster/config/nodes", (404, 500, 501), []))
        except MalformedAnswer as exc:
            raise ApiError(200, f"unexpected answer from {self.active_host}: {exc}") from None
        with self._lock:
            self._crs, self._ha_rules, self._votes = crs, rules, votes
            self._snapshots_since_slow = 0
        return self.request_count - before

    def _get_optional(self, path: str, missing: tuple[int, ...], default: Any) -> Any:
        """GET that answers ``default`` when this PVE lacks the endpoint or the data."""
        try:
            return self.get(path)
        except ApiError as exc:
            if exc.status not in missing:
                raise
            return default

    def fetch_snapshot(self) -> ClusterSnapshot:
        """``GET /cluster/resources`` + ``GET /cluster/status`` -> ClusterSnapshot (exactly 2 requests)."""
        before = self._counter.this_thread
        resources = self.get("cluster/resources")
        status = self.get("cluster/status")
        with self._lock:
            crs, rules, votes = self._crs, self._ha_rules, self._votes
            if self._snapshots_since_slow is not None:
                self._snapshots_since_slow += 1
        try:
            return build_snapshot(
                resources,
                status,
                crs=crs,
                ha_rules=rules,
                votes=votes,
                fetched_at=self._clock(),
                api_requests=self._counter.this_thread - before,
            )
        except MalformedAnswer as exc:
            raise ApiError(200, f"unexpected answer from {self.active_host}: {exc}") from None

    # ------------------------------------------------------------------ detail panes

    def node_rrddata(self, node: str, timeframe: str = "hour", cf: str = "AVERAGE") -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.get(f"nodes/{node}/rrddata", timeframe=timeframe, cf=cf)
        return rows

    def guest_rrddata(self, guest: Guest, timeframe: str = "hour", cf: str = "AVERAGE") -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self.get(f"{guest_path(guest)}/rrddata", timeframe=timeframe, cf=cf)
        return rows

    def guest_config(self, guest: Guest) -> dict[str, Any]:
        config: dict[str, Any] = self.get(f"{guest_path(guest)}/config")
        return config

    def node_config(self, node: str) -> dict[str, Any]:
        config: dict[str, Any] = self.get(f"nodes/{node}/config")
        return config

    def node_status(self, node: str) -> dict[str, Any]:
        status: dict[str, Any] = self.get(f"nodes/{node}/status")
        return status


def guest_path(guest: Guest) -> str:
    """``nodes/pve1/qemu/100``: where a guest's per-guest endpoints live (on its current node)."""
    return f"nodes/{guest.node}/{guest.type}/{guest.vmid}"


# ---------------------------------------------------------------------- helpers


class _HostDown(Exception):
    """This host did not answer; the next one may."""

    def __init__(self, detail: str, *, before_connect: bool) -> None:
        super().__init__(detail)
        self.detail = detail
        self.before_connect = before_connect


def _unreachable(failures: list[str], *, write: bool) -> ConnectionFailed:
    hint = "check the host and port (PVE listens on 8006) and that the node is up"
    if write:
        hint = "the request may still have reached the cluster: check its tasks before retrying"
    if len(failures) == 1:
        return ConnectionFailed(f"cannot reach {failures[0]}", hint=hint)
    return ConnectionFailed("cannot reach any host: " + "; ".join(failures), hint=hint)


def _base_url(host: str, port: int) -> str:
    return f"https://{format_host(host, port)}/api2/json"


def _wire_value(value: Any) -> Any:
    """PVE wants booleans as 0/1."""
    return int(value) if isinstance(value, bool) else value


def _innermost(exc: BaseException) -> str:
    """The most specific message in requests' exception chain (MaxRetryError -> reason -> ...)."""
    current: Any = exc
    for _ in range(6):
        inner = current.args[0] if getattr(current, "args", None) else None
        reason = getattr(inner, "reason", None) or getattr(current, "reason", None)
        if isinstance(reason, BaseException) and reason is not current:
            current = reason
        elif isinstance(inner, BaseException) and inner is not current:
            current = inner
        else:
            break
    return str(current)


def _never_connected(exc: requests.exceptions.ConnectionError) -> bool:
    current: Any = exc
    for _ in range(6):
        if isinstance(current, NewConnectionError):
            return True
        inner = current.args[0] if getattr(current, "args", None) else None
        current = getattr(inner, "reason", None) or inner
        if current is None:
            break
    return False


def _connection_reason(exc: requests.exceptions.ConnectionError) -> str:
    text = _innermost(exc)
    errno_text = re.search(r"\[Errno -?\d+\] ([^)'\"]+)", text)
    if errno_text:
        return errno_text.group(1).strip().rstrip(".")
    text = re.sub(r"<[^>]+>:\s*", "", text)
    if "RemoteDisconnected" in text or "Connection aborted" in text:
        return "the connection was closed without an answer"
    return text


def _short_ssl_reason(text: str) -> str:
    match = re.search(r"certificate verify failed: ([^(\])]+)", text)
    return f"certificate verify failed: {match.group(1).strip()}" if match else text


def _colon_hex(text: str) -> str:
    digits = text.replace(":", "").upper()
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))


def presented_fingerprint(host: str, port: int, *, timeout: float = 5.0) -> str | None:
    """SHA-256 fingerprint of the certificate a host presents (unverified: only for messages)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with (
            socket.create_connection((host, port), timeout=timeout) as raw,
            context.wrap_socket(raw, server_hostname=host) as tls,
        ):
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError):
        return None
    return _colon_hex(hashlib.sha256(der).hexdigest()) if der else None
