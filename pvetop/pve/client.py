"""``PveClient``: the one door to a Proxmox VE API (proxmoxer underneath).

- Auth: API token, or user/password with a ticket renewed halfway through its 2 h life.
- TLS: verified by default; a CA file; or a SHA-256 fingerprint pin for self-signed clusters;
  ``verify=False`` only when asked, and then ``insecure_warning`` says so for the UI.
- Several hosts fail over in order when one does not answer; the working one is remembered.
- Reads (GET) are retried with a short backoff when a connection drops or a proxy answers
  502/503/504; a write never is (it may have reached the cluster). Every request has a total
  deadline (``timeout``), a size cap (``max_response_bytes``) and never follows a redirect.
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
from typing import Any, TypeVar
from urllib.parse import urlsplit

import requests
from proxmoxer.backends.https import ProxmoxHTTPApiTokenAuth
from proxmoxer.core import ProxmoxResource, ResourceException
from urllib3.exceptions import NewConnectionError

from pvetop.config import ConnectionSettings, format_host
from pvetop.errors import ApiError, ConnectionFailed, PvetopError, ReadOnlyRefused
from pvetop.model import ClusterSnapshot, CrsOptions, Guest, HaRule
from pvetop.pve.parse import (
    MalformedAnswer,
    Warnings,
    build_snapshot,
    parse_config_nodes,
    parse_crs,
    parse_ha_node_states,
    parse_ha_rules,
    parse_object,
    parse_rows,
    parse_tag_colors,
)
from pvetop.pve.transport import (
    CountingAdapter,
    DeadlineExceeded,
    LoginRejected,
    RedirectRefused,
    RequestCounter,
    ResponseTooLarge,
    StrictJsonSerializer,
    TicketAuth,
    UnexpectedAnswer,
    build_sessions,
    silence_insecure_request_warnings,
)

Shaped = TypeVar("Shaped")
DEFAULT_SLOW_DATA_EVERY = 30
SLOW_DATA_TICKET_MARGIN = 600.0  # renew the ticket on the slow cadence, well before it is due
READ_RETRY_PAUSES = (0.25, 1.0)  # seconds before the 2nd and 3rd try of a GET whose connection dropped
TRANSIENT_STATUSES = frozenset({502, 503, 504})  # a proxy or pveproxy restarting; PVE's 500/595 are final

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
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Builds sessions only; ``connect`` (or the first call) does the network part."""
        self.settings = settings
        self.slow_data_every = slow_data_every
        self._clock = clock
        self._sleep = sleep
        self._counter = RequestCounter()
        self._adapter = CountingAdapter(
            self._counter,
            settings.fingerprint,
            max_response_bytes=settings.max_response_bytes,
            deadline=settings.timeout,
        )
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
        serializer = StrictJsonSerializer()
        self._base_urls = [_base_url(host, port) for host, port in settings.hosts]
        self._roots = [
            ProxmoxResource(base_url=url, session=self._session, serializer=serializer) for url in self._base_urls
        ]
        self._active = 0
        self._lock = threading.Lock()
        self._crs = CrsOptions()
        self._ha_rules: tuple[HaRule, ...] = ()
        self._votes: dict[str, int] = {}
        self._ha_node_states: dict[str, str] = {}  # slow data: the HA manager's state of each node
        self._tag_colors: tuple[tuple[str, str, str], ...] = ()  # slow data: tag-style color-map
        self._slow_warnings: tuple[str, ...] = ()
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
                result = self._send_retrying(index, method, path, args)
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

    def _send_retrying(self, index: int, method: str, path: str, args: dict[str, Any]) -> Any:
        """``_send``, tried again after a short pause when a read failed in a way that passes.

        Only GETs (idempotent) and only a dropped connection or a 502/503/504: a refused
        connection or a timeout means the host is down (the next host is tried instead), a 4xx
        will not change, and PVE's 500 and 595 (the target node is dead) are final answers.
        """
        for pause in (*READ_RETRY_PAUSES, None):
            try:
                self._ensure_ticket(index)
                return self._send(index, method, path, args)
            except _HostDown as down:
                if method != "GET" or pause is None or not down.dropped:
                    raise
            except ApiError as exc:
                if method != "GET" or pause is None or exc.status not in TRANSIENT_STATUSES:
                    raise
            self._sleep(pause)
        raise AssertionError("unreachable: the last try re-raises")

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
        except UnexpectedAnswer as exc:
            raise unexpected_answer(self._label(index), f"{method} /{path}", str(exc)) from None
        except requests.RequestException as exc:
            raise self._transport_error(exc, index, method, path) from None
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
        """TLS problems, redirects and oversized answers are final (another host will not fix them);
        the rest means 'host down'."""
        label = self._label(index)
        if isinstance(exc, RedirectRefused):
            return ConnectionFailed(
                f"{label}: {method} /{path}: {exc}",
                hint="the Proxmox VE API never redirects: check the host and port (HTTPS, 8006 by default)",
            )
        if isinstance(exc, ResponseTooLarge):
            return ApiError(
                200,
                f"{label}: {method} /{path}: {exc}",
                hint="raise max_response_bytes in the config profile (or PVETOP_MAX_RESPONSE_BYTES) if the cluster "
                "really is that large",
            )
        if isinstance(exc, DeadlineExceeded):
            return _HostDown(
                f"{label}: {method} /{path} got no complete answer within {exc.deadline:g} s (timeout)",
                before_connect=False,
            )
        if isinstance(exc, requests.exceptions.SSLError):
            text = _innermost(exc)
            if "UNEXPECTED_EOF" in text or "EOF occurred in violation of protocol" in text:
                # hung up mid-handshake (a load balancer, a restarting pveproxy): nothing was sent yet
                return _HostDown(
                    f"{label}: the connection was closed during the TLS handshake", before_connect=True, dropped=True
                )
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
            presented = presented_fingerprint(
                *self.settings.hosts[index], timeout=self.settings.timeout, proxy=self._proxy_for(index)
            )
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
            never_connected = _never_connected(exc)
            return _HostDown(
                f"{label}: {_connection_reason(exc)}", before_connect=never_connected, dropped=not never_connected
            )
        return ConnectionFailed(f"{label}: {type(exc).__name__}: {_innermost(exc)}")

    def _proxy_for(self, index: int) -> str | None:
        """The proxy requests uses for this host (``HTTPS_PROXY`` unless ``NO_PROXY`` exempts it)."""
        url = self._base_urls[index]
        proxies = requests.utils.get_environ_proxies(url) if self._session.trust_env else {}
        return requests.utils.select_proxy(url, {**proxies, **self._session.proxies})

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
        """Options, HA rules, corosync votes and the HA manager's node states into the cache (4
        requests); returns requests used.

        ``GET /cluster/options`` (crs), ``GET /cluster/ha/rules`` (PVE < 9 has none: 404/501 means
        no rules), ``GET /cluster/config/nodes`` (votes; a standalone node has no corosync config
        and answers an error: every node then counts 1) and ``GET /cluster/ha/status/manager_status``
        (node maintenance / fence; empty without HA). A ticket getting old is renewed
        here too, so the per-refresh path stays at 2 requests.
        """
        before = self.request_count
        if self._ticket_auth is not None:
            self._ticket_auth.renew_if_due(early=SLOW_DATA_TICKET_MARGIN)
        warnings = Warnings()
        try:
            options = self.get("cluster/options")
            crs = parse_crs(options, warnings)
            tag_colors = parse_tag_colors(options)
            rules = parse_ha_rules(self._get_optional("cluster/ha/rules", (404, 501), []), warnings)
            votes = parse_config_nodes(self._get_optional("cluster/config/nodes", (404, 500, 501), []), warnings)
            ha_states = parse_ha_node_states(
                self._get_optional("cluster/ha/status/manager_status", (403, 404, 500, 501), {})
            )
        except MalformedAnswer as exc:
            raise unexpected_answer(self.active_host, exc.endpoint, exc.detail) from None
        with self._lock:
            self._crs, self._ha_rules, self._votes, self._ha_node_states = crs, rules, votes, ha_states
            self._tag_colors = tag_colors
            self._slow_warnings = warnings.as_tuple()
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
            crs, rules, votes, slow_warnings = self._crs, self._ha_rules, self._votes, self._slow_warnings
            ha_states, tag_colors = self._ha_node_states, self._tag_colors
            if self._snapshots_since_slow is not None:
                self._snapshots_since_slow += 1
        try:
            return build_snapshot(
                resources,
                status,
                crs=crs,
                ha_rules=rules,
                votes=votes,
                ha_node_states=ha_states,
                tag_colors=tag_colors,
                warnings=slow_warnings,
                fetched_at=self._clock(),
                api_requests=self._counter.this_thread - before,
            )
        except MalformedAnswer as exc:
            raise unexpected_answer(self.active_host, exc.endpoint, exc.detail) from None

    # ------------------------------------------------------------------ detail panes

    def node_rrddata(self, node: str, timeframe: str = "hour", cf: str = "AVERAGE") -> list[dict[str, Any]]:
        return self._get_shaped(parse_rows, f"nodes/{node}/rrddata", timeframe=timeframe, cf=cf)

    def guest_rrddata(self, guest: Guest, timeframe: str = "hour", cf: str = "AVERAGE") -> list[dict[str, Any]]:
        return self._get_shaped(parse_rows, f"{guest_path(guest)}/rrddata", timeframe=timeframe, cf=cf)

    def guest_config(self, guest: Guest) -> dict[str, Any]:
        return self._get_shaped(parse_object, f"{guest_path(guest)}/config")

    def node_config(self, node: str) -> dict[str, Any]:
        return self._get_shaped(parse_object, f"nodes/{node}/config")

    def node_status(self, node: str) -> dict[str, Any]:
        return self._get_shaped(parse_object, f"nodes/{node}/status")

    def _get_shaped(self, shape: Callable[[str, Any], Shaped], path: str, **params: Any) -> Shaped:
        """GET whose answer must have the shape ``shape`` checks (a list of rows, an object)."""
        try:
            return shape(f"GET /{path}", self.get(path, **params))
        except MalformedAnswer as exc:
            raise unexpected_answer(self.active_host, exc.endpoint, exc.detail) from None


def guest_path(guest: Guest) -> str:
    """``nodes/pve1/qemu/100``: where a guest's per-guest endpoints live (on its current node)."""
    return f"nodes/{guest.node}/{guest.type}/{guest.vmid}"


# ---------------------------------------------------------------------- helpers


class _HostDown(Exception):
    """This host did not answer; the next one may. ``dropped``: it was connected, then hung up."""

    def __init__(self, detail: str, *, before_connect: bool, dropped: bool = False) -> None:
        super().__init__(detail)
        self.detail = detail
        self.before_connect = before_connect
        self.dropped = dropped


def unexpected_answer(host: str, endpoint: str, detail: str) -> ApiError:
    """A 2xx answer pvetop cannot use: exit code 4, naming the host, the endpoint and what was wrong."""
    return ApiError(
        200,
        f"unexpected answer from {host} to {endpoint}: {detail}",
        hint="is this a Proxmox VE API? If it is, please report this answer as a pvetop bug",
    )


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


def presented_fingerprint(host: str, port: int, *, timeout: float = 5.0, proxy: str | None = None) -> str | None:
    """SHA-256 fingerprint of the certificate a host presents (unverified: only for messages).

    Taken on the same path the request took: through ``proxy`` (an ``http://`` CONNECT proxy)
    when one is in use, since a proxy may lead somewhere else than a direct connection would.
    Other proxy kinds give None (no fingerprint shown rather than a wrong one).
    """
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with _open_path(host, port, timeout, proxy) as raw, context.wrap_socket(raw, server_hostname=host) as tls:
            der = tls.getpeercert(binary_form=True)
    except (OSError, ssl.SSLError, ValueError):
        return None
    return _colon_hex(hashlib.sha256(der).hexdigest()) if der else None


def _open_path(host: str, port: int, timeout: float, proxy: str | None) -> socket.socket:
    """A TCP connection to host:port, directly or tunnelled through an HTTP CONNECT proxy."""
    if proxy is None:
        return socket.create_connection((host, port), timeout=timeout)
    parts = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"cannot probe through a {parts.scheme} proxy")
    sock = socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout)
    target = format_host(host, port)
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n\r\n".encode())
    answer = b""
    while b"\r\n\r\n" not in answer and len(answer) < 65536:
        chunk = sock.recv(4096)
        if not chunk:
            break
        answer += chunk
    if not answer.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
        sock.close()
        raise ValueError("the proxy refused the tunnel")
    return sock
