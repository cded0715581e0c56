"""HTTP plumbing under proxmoxer: request counting, certificate pinning, ticket auth.

requests has no fingerprint option, so pinning mounts an adapter whose urllib3 pool checks
``assert_fingerprint`` (chain verification is then off: the pin *is* the trust). Ticket login
goes through the same adapter — proxmoxer's own ``ProxmoxHTTPAuth`` posts with the module-level
``requests`` and would skip the pin and the request counter — and renews the ticket halfway
through its 2 h life.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import requests
import urllib3
from proxmoxer.backends.https import JsonSerializer, ProxmoxHTTPAuthBase, ProxmoxHttpSession
from requests.adapters import HTTPAdapter
from requests.cookies import RequestsCookieJar
from requests.models import PreparedRequest, Response
from urllib3.exceptions import InsecureRequestWarning

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


class CountingAdapter(HTTPAdapter):
    """Counts every request it sends; with ``fingerprint`` the TLS peer must present that cert."""

    def __init__(self, counter: RequestCounter, fingerprint: str | None = None, **kwargs: Any) -> None:
        self._counter = counter
        self._fingerprint = fingerprint.replace(":", "").lower() if fingerprint else None
        super().__init__(**kwargs)

    def init_poolmanager(self, connections: int, maxsize: int, block: bool = False, **pool_kwargs: Any) -> None:
        if self._fingerprint:
            pool_kwargs["assert_fingerprint"] = self._fingerprint
        super().init_poolmanager(connections, maxsize, block=block, **pool_kwargs)

    def send(self, request: PreparedRequest, *args: Any, **kwargs: Any) -> Response:
        self._counter.increment()
        return super().send(request, *args, **kwargs)


class LoginRejected(Exception):
    """``POST /access/ticket`` answered 401: wrong user or password."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"{status} {reason}")
        self.status = status
        self.reason = reason


class TicketAuth(ProxmoxHTTPAuthBase):  # type: ignore[misc]  # proxmoxer ships no type information
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
            data = response.json()["data"]
            need_tfa = data.get("NeedTFA")
            ticket, csrf_token = data["ticket"], data["CSRFPreventionToken"]
        except (ValueError, KeyError, TypeError, AttributeError):
            raise LoginRejected(
                response.status_code, "unexpected answer to POST /access/ticket (is this a Proxmox VE API?)"
            ) from None
        if need_tfa:
            raise LoginRejected(401, "the account needs a second factor (TFA); use an API token instead")
        self.ticket, self.csrf_token = ticket, csrf_token
        self.issued_at = self._clock()

    def get_cookies(self) -> RequestsCookieJar:
        return requests.cookies.cookiejar_from_dict({"PVEAuthCookie": self.ticket} if self.ticket else {})

    def get_tokens(self) -> tuple[str | None, str | None]:
        return self.ticket, self.csrf_token

    def __call__(self, request: PreparedRequest) -> PreparedRequest:
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
