"""HTTP plumbing under proxmoxer: request counting, certificate pinning, hard limits, ticket auth.

requests has no fingerprint option, so pinning mounts an adapter whose urllib3 pools check
``assert_fingerprint`` (chain verification is then off: the pin *is* the trust). The pin is set
on direct pools and on the pools requests builds for an ``HTTPS_PROXY`` (a CONNECT tunnel ends
at the node, so the node's certificate is still checked), and every session below shares the
adapter. The same adapter refuses redirects (PVE never redirects its API, and following one would
send the ticket elsewhere), caps the size of every answer, and gives every request a total
deadline: a watchdog shuts the socket of a request that runs past it, so a server that drips one
byte a second cannot hold a caller for longer. Ticket login goes through the same adapter —
proxmoxer's own ``ProxmoxHTTPAuth`` posts with the module-level ``requests`` and would skip all of
this — and renews the ticket halfway through its 2 h life.
"""

from __future__ import annotations

import heapq
import io
import itertools
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import urllib3
from proxmoxer.backends.https import JsonSerializer, ProxmoxHTTPAuthBase, ProxmoxHttpSession
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPSConnection
from urllib3.connectionpool import HTTPSConnectionPool
from urllib3.exceptions import InsecureRequestWarning
from urllib3.poolmanager import PoolManager

from pvetop.config import DEFAULT_MAX_RESPONSE_BYTES

READ_CHUNK = 64 * 1024
TICKET_RENEW_AFTER = 3600.0  # seconds; PVE tickets expire after 2 h


class RequestCounter:
    """Count of HTTP requests actually sent (the ≤2-per-refresh proof), in total and per thread.

    The per-thread figure lets a refresh report its own cost while a detail pane's calls run
    on another thread.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._local = threading.local()
        self.value = 0

    def increment(self) -> None:
        with self._lock:
            self.value += 1
        self._local.count = self.this_thread + 1

    @property
    def this_thread(self) -> int:
        return getattr(self._local, "count", 0)


def silence_insecure_request_warnings() -> None:
    """verify=False is only ever chosen on purpose (and shown in the UI); fingerprint pinning turns
    chain checks off by design. Either way urllib3's per-request warning would only be noise."""
    urllib3.disable_warnings(InsecureRequestWarning)


class ResponseTooLarge(requests.RequestException):
    """An answer bigger than ``max_response_bytes``: reading stopped at the cap."""

    def __init__(self, limit: int, declared: int | None = None) -> None:
        size = f"announces {declared} bytes" if declared is not None else "goes on past the cap"
        super().__init__(f"the answer {size}; pvetop reads at most {limit} bytes (max_response_bytes)")
        self.limit = limit


class RedirectRefused(requests.RequestException):
    """A 3xx answer: PVE never redirects its API, so pvetop follows none (a ticket must not travel)."""

    def __init__(self, status: int, location: str) -> None:
        super().__init__(f"the server answered a redirect ({status}) to {location[:200]!r}, which pvetop never follows")
        self.status = status
        self.location = location


class DeadlineExceeded(requests.exceptions.Timeout):
    """The whole request (connection, headers and body) took longer than its deadline."""

    def __init__(self, deadline: float) -> None:
        super().__init__(f"no complete answer within {deadline:g} s")
        self.deadline = deadline


class UnexpectedAnswer(Exception):
    """A 2xx answer that is not PVE's JSON envelope ``{"data": ...}`` (or holds NaN/Infinity)."""


class _Watchdog:
    """Shuts down the socket of the request in flight on this thread once its deadline passes.

    Timeouts in requests bound each socket operation, not the request: a server that sends one
    byte every few seconds never trips them. The watchdog bounds the total.
    """

    _current = threading.local()

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self.done = False
        self._connection: HTTPSConnection | None = None
        self._lock = threading.Lock()

    def __enter__(self) -> _Watchdog:
        _Watchdog._current.watchdog = self
        _DEADLINES.add(self, time.monotonic() + self.seconds)
        return self

    def __exit__(self, *exc_info: object) -> None:
        _DEADLINES.finish(self)
        _Watchdog._current.watchdog = None

    @classmethod
    def watch(cls, connection: HTTPSConnection) -> None:
        """Called by the connection as it sends a request on this thread."""
        watchdog: _Watchdog | None = getattr(cls._current, "watchdog", None)
        if watchdog is None:
            return
        with watchdog._lock:
            watchdog._connection = connection
            expired = watchdog.expired
        if expired:
            _shut(connection)

    def expire(self) -> None:
        with self._lock:
            self.expired = True
            connection = self._connection
        if connection is not None:
            _shut(connection)


class _Deadlines:
    """One thread expires every watchdog of the process: a request registers its deadline here
    instead of starting a timer thread of its own, whose start (it waits for the new thread to
    run) cost more than the request itself on a busy machine. The thread wakes at the earliest
    deadline and then drops the watchdogs whose requests have finished since."""

    def __init__(self) -> None:
        self._queue: list[tuple[float, int, _Watchdog]] = []  # a heap of (deadline, order, watchdog)
        self._order = itertools.count()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, watchdog: _Watchdog, deadline: float) -> None:
        with self._changed:
            first = not self._queue or deadline < self._queue[0][0]
            heapq.heappush(self._queue, (deadline, next(self._order), watchdog))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="pvetop-deadlines", daemon=True)
                self._thread.start()
            elif first:
                self._changed.notify()

    def finish(self, watchdog: _Watchdog) -> None:
        with self._changed:
            watchdog.done = True

    def _run(self) -> None:
        with self._changed:
            while True:
                self._queue = [entry for entry in self._queue if not entry[2].done]
                heapq.heapify(self._queue)
                if not self._queue:
                    self._changed.wait()
                    continue
                deadline, _, watchdog = self._queue[0]
                left = deadline - time.monotonic()
                if left > 0:
                    self._changed.wait(left)
                    continue
                heapq.heappop(self._queue)
                watchdog.done = True
                watchdog.expire()


_DEADLINES = _Deadlines()


def _shut(connection: HTTPSConnection) -> None:
    """Unblocks a read in another thread: shutting down the socket makes it return at once."""
    sock = connection.sock
    if sock is not None:
        try:
            socket.socket.shutdown(sock, socket.SHUT_RDWR)
        except OSError:
            pass


class _WatchedHTTPSConnection(HTTPSConnection):
    def request(self, *args: Any, **kwargs: Any) -> None:
        _Watchdog.watch(self)
        super().request(*args, **kwargs)


class _WatchedHTTPSConnectionPool(HTTPSConnectionPool):
    ConnectionCls = _WatchedHTTPSConnection


class CountingAdapter(HTTPAdapter):
    """Counts every request it sends and holds every answer to pvetop's limits.

    With ``fingerprint`` the TLS peer must present that certificate, directly or through a proxy.
    ``max_response_bytes`` caps a body (after decompression); ``deadline`` bounds a whole request.
    """

    def __init__(
        self,
        counter: RequestCounter,
        fingerprint: str | None = None,
        *,
        max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES,
        deadline: float | None = None,
        **kwargs: Any,
    ) -> None:
        self._counter = counter
        self._fingerprint = fingerprint.replace(":", "").lower() if fingerprint else None
        self.max_response_bytes = max_response_bytes
        self.deadline = deadline
        super().__init__(**kwargs)

    def _pinned(self, pool_kwargs: dict[str, Any]) -> dict[str, Any]:
        if self._fingerprint:
            pool_kwargs["assert_fingerprint"] = self._fingerprint
        return pool_kwargs

    @staticmethod
    def _watched(manager: PoolManager) -> PoolManager:
        manager.pool_classes_by_scheme = {**manager.pool_classes_by_scheme, "https": _WatchedHTTPSConnectionPool}
        return manager

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        super().init_poolmanager(connections, maxsize, block=block, **self._pinned(pool_kwargs))
        self._watched(self.poolmanager)

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> PoolManager:
        """The pools requests builds for a proxy get the pin too (it would otherwise skip it)."""
        fresh = proxy not in self.proxy_manager
        manager: PoolManager = super().proxy_manager_for(proxy, **self._pinned(proxy_kwargs))
        return self._watched(manager) if fresh else manager

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: bool | str = True,
        cert: Any = None,
        proxies: dict[str, str] | None = None,
    ) -> requests.Response:
        self._counter.increment()
        if self.deadline is None:
            return self._send_capped(request, timeout, verify, cert, proxies)
        with _Watchdog(self.deadline) as watchdog:
            try:
                response = self._send_capped(request, timeout, verify, cert, proxies)
            except requests.RequestException as exc:
                if watchdog.expired:
                    raise DeadlineExceeded(self.deadline) from exc
                raise
        if watchdog.expired:
            raise DeadlineExceeded(self.deadline)
        return response

    def _send_capped(
        self,
        request: requests.PreparedRequest,
        timeout: Any,
        verify: bool | str,
        cert: Any,
        proxies: dict[str, str] | None,
    ) -> requests.Response:
        """Sends, refuses a redirect, and reads the body itself up to the cap."""
        response = super().send(request, stream=True, timeout=timeout, verify=verify, cert=cert, proxies=proxies)
        try:
            if 300 <= response.status_code < 400:
                raise RedirectRefused(response.status_code, response.headers.get("Location", ""))
            body = self._read_capped(response)
        except BaseException:
            response.close()
            raise
        response.close()
        capped = requests.Response()
        for name in ("status_code", "headers", "url", "reason", "request", "connection", "elapsed", "encoding"):
            setattr(capped, name, getattr(response, name))
        capped.cookies = response.cookies
        capped.raw = io.BytesIO(body)
        return capped

    def _read_capped(self, response: requests.Response) -> bytes:
        limit = self.max_response_bytes
        declared = response.headers.get("Content-Length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ResponseTooLarge(limit, int(declared))
        chunks: list[bytes] = []
        total = 0
        for chunk in response.iter_content(READ_CHUNK):
            total += len(chunk)
            if total > limit:
                raise ResponseTooLarge(limit)
            chunks.append(chunk)
        return b"".join(chunks)


class StrictJsonSerializer(JsonSerializer):  # type: ignore[misc]
    """proxmoxer's serializer, strict: a 2xx answer must be ``{"data": ...}`` in real JSON.

    proxmoxer's own one crashes on a top-level list or a missing ``data`` and lets NaN and
    Infinity through (not JSON, and poison for every sum downstream).
    """

    def loads(self, response: requests.Response) -> Any:
        document = _json_document(response.content)
        if not isinstance(document, dict) or "data" not in document:
            raise UnexpectedAnswer(f'expected an object with a "data" member, got {_kind(document)}')
        return document["data"]

    def loads_errors(self, response: requests.Response) -> dict[str, Any] | None:
        """PVE's ``errors`` object of an error answer, when there is one (never raises)."""
        try:
            document = _json_document(response.content)
        except UnexpectedAnswer:
            return None
        errors = document.get("errors") if isinstance(document, dict) else None
        return errors if isinstance(errors, dict) else None


def _json_document(content: bytes) -> Any:
    try:
        return json.loads(content, parse_constant=_reject_constant)
    except UnexpectedAnswer:
        raise
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise UnexpectedAnswer(f"the answer is not JSON ({type(exc).__name__}: {str(exc)[:120]})") from None


def _reject_constant(name: str) -> Any:
    raise UnexpectedAnswer(f"the answer holds {name}, which is not JSON")


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__


class LoginRejected(Exception):
    """``POST /access/ticket`` answered 401: wrong user or password."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class TicketAuth(ProxmoxHTTPAuthBase):  # type: ignore[misc]
    """User/password auth: PVEAuthCookie ticket + CSRF header on writes, renewed before expiry.

    Logs in lazily (``ensure``) so the client can fail over between hosts first; renews with the
    current ticket and falls back to the password when the ticket has already expired (a laptop
    that slept through the 2 h).
    """

    def __init__(
        self,
        username: str,
        password: str,
        ticket_session: requests.Session,
        *,
        timeout: float,
        verify_ssl: bool | str,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(timeout=timeout, verify_ssl=verify_ssl)
        self.username = username
        self._password = password
        self._session = ticket_session
        self._clock = clock
        self._lock = threading.Lock()
        self.base_url: str | None = None
        self.ticket: str | None = None
        self.csrf_token: str | None = None
        self.issued_at = 0.0

    def __repr__(self) -> str:
        return f"TicketAuth(username={self.username!r}, ticket={'***' if self.ticket else None})"

    def ensure(self, base_url: str) -> None:
        """Logs in at ``base_url`` the first time; later only points renewals at it (a failover:
        tickets are valid cluster-wide). Raises ``LoginRejected`` on 401."""
        with self._lock:
            self.base_url = base_url
            if self.ticket is None:
                self._post_ticket(self._password)

    def renew(self) -> None:
        """New ticket from the current one, or from the password if the ticket was refused."""
        with self._lock:
            self._renew_locked()

    def renew_if_due(self, *, early: float = 0.0) -> bool:
        """Renews when the ticket is ``TICKET_RENEW_AFTER`` (minus ``early``) seconds old.

        Checked again under the lock, so threads that find it due together renew it once.
        """
        if not self._due(early):
            return False
        with self._lock:
            if not self._due(early):
                return False
            self._renew_locked()
            return True

    def _due(self, early: float) -> bool:
        return self.ticket is not None and self._clock() - self.issued_at >= TICKET_RENEW_AFTER - early

    def _renew_locked(self) -> None:
        try:
            self._post_ticket(self.ticket or self._password)
        except LoginRejected:
            self._post_ticket(self._password)

    def _post_ticket(self, password: str) -> None:
        response = self._session.post(
            f"{self.base_url}/access/ticket",
            data={"username": self.username, "password": password},
            verify=self.verify_ssl,
            timeout=self.timeout,
        )
        if response.status_code in (401, 403):
            raise LoginRejected(response.status_code, response.reason or "authentication failure")
        response.raise_for_status()
        try:
            data = _json_document(response.content)["data"]
            need_tfa = data.get("NeedTFA")
            ticket, csrf_token = data["ticket"], data["CSRFPreventionToken"]
            if not isinstance(ticket, str) or not isinstance(csrf_token, str):
                raise TypeError("ticket and CSRF token must be strings")
        except (UnexpectedAnswer, KeyError, TypeError, AttributeError):
            raise LoginRejected(
                response.status_code, "unexpected answer to POST /access/ticket (is this a Proxmox VE API?)"
            ) from None
        if need_tfa:
            raise LoginRejected(401, "the account needs a second factor (TFA); use an API token instead")
        self.ticket, self.csrf_token = ticket, csrf_token
        self.issued_at = self._clock()

    def get_cookies(self) -> requests.cookies.RequestsCookieJar:
        return requests.cookies.cookiejar_from_dict({"PVEAuthCookie": self.ticket} if self.ticket else {})

    def get_tokens(self) -> tuple[str | None, str | None]:
        return self.ticket, self.csrf_token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if request.method != "GET" and self.csrf_token:
            request.headers["CSRFPreventionToken"] = self.csrf_token
        return request


def build_sessions(
    adapter: HTTPAdapter, auth: ProxmoxHTTPAuthBase | None
) -> tuple[ProxmoxHttpSession, requests.Session]:
    """proxmoxer's API session (with ``auth``) and a bare session for ticket logins, sharing ``adapter``."""
    api = ProxmoxHttpSession()
    api.auth = auth
    api.headers["Connection"] = "keep-alive"
    api.headers["accept"] = JsonSerializer().get_accept_types()
    api.mount("https://", adapter)
    bare = requests.Session()
    bare.mount("https://", adapter)
    return api, bare
