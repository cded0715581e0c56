"""Users, API tokens, tickets and privileges, checked the way pve-api-daemon checks them.

Two accounts: ``root@pam`` (every privilege, token ``pvetop``) and the read-only
``auditor@pve`` (Sys.Audit, VM.Audit, Datastore.Audit, token ``readonly``) so 403 answers can
be exercised. Tickets expire after two hours of *simulated* time.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
import string
import uuid
from dataclasses import dataclass, field

from pvetop.sim.errors import PveApiError

TICKET_LIFETIME = 7200
# pve-manager HTTPServer.pm auth_handler: any bad token or ticket gets this one text (details go to syslog)
AUTH_FAILED = "Authentication failed!"
ALL_PRIVILEGES = (
    "Datastore.Allocate",
    "Datastore.AllocateSpace",
    "Datastore.AllocateTemplate",
    "Datastore.Audit",
    "Permissions.Modify",
    "Pool.Allocate",
    "Pool.Audit",
    "SDN.Audit",
    "SDN.Use",
    "Sys.Audit",
    "Sys.Console",
    "Sys.Modify",
    "Sys.PowerMgmt",
    "Sys.Syslog",
    "User.Modify",
    "VM.Allocate",
    "VM.Audit",
    "VM.Backup",
    "VM.Clone",
    "VM.Config.CDROM",
    "VM.Config.CPU",
    "VM.Config.Cloudinit",
    "VM.Config.Disk",
    "VM.Config.HWType",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "VM.Console",
    "VM.Migrate",
    "VM.PowerMgmt",
    "VM.Snapshot",
    "VM.Snapshot.Rollback",
)
AUDIT_PRIVILEGES = ("Datastore.Audit", "Sys.Audit", "VM.Audit")
PERMISSION_PATHS = ("/", "/access", "/nodes", "/pool", "/sdn", "/storage", "/vms")

PASSWORD_ALPHABET = string.ascii_letters + string.digits


def new_password(length: int = 16) -> str:
    """A random password of letters and digits: pasted after ``--password`` it can never be taken
    for an option (``token_urlsafe`` may start with ``-``)."""
    return "".join(secrets.choice(PASSWORD_ALPHABET) for _ in range(length))


@dataclass
class Account:
    userid: str
    password: str
    privileges: frozenset[str]
    tokens: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Identity:
    """Who is calling: ``userid`` includes ``!tokenid`` for tokens, as PVE records it in UPIDs."""

    userid: str
    privileges: frozenset[str]
    via_ticket: bool

    def require(self, path: str, *privileges: str) -> None:
        """Passes when any of ``privileges`` is held (PVE's "any" checks); else 403."""
        if not any(p in self.privileges for p in privileges):
            raise PveApiError(403, f"Permission check failed ({path}, {privileges[0]})")

    def permissions(self) -> dict[str, dict[str, int]]:
        return {path: {priv: 1 for priv in sorted(self.privileges)} for path in PERMISSION_PATHS}


class Auth:
    def __init__(self, clock_now, *, root_password: str | None = None):
        self._now = clock_now
        self.root = Account(
            "root@pam", root_password or new_password(), frozenset(ALL_PRIVILEGES), {"pvetop": str(uuid.uuid4())}
        )
        self.auditor = Account(
            "auditor@pve", new_password(), frozenset(AUDIT_PRIVILEGES), {"readonly": str(uuid.uuid4())}
        )
        self.accounts = {a.userid: a for a in (self.root, self.auditor)}
        self._key = secrets.token_bytes(32)
        self._tickets: dict[str, tuple[str, float]] = {}

    def _sign(self, text: str) -> str:
        digest = hashlib.sha256(self._key + text.encode()).digest()
        return base64.b64encode(digest + hashlib.sha256(digest).digest()).decode().rstrip("=")

    def login(self, username: str, password: str, realm: str | None, cluster_name: str) -> dict:
        """POST /access/ticket: a password, or a still valid ticket to renew it."""
        if realm and "@" not in username:
            username = f"{username}@{realm}"
        account = self.accounts.get(username)
        if account is None:
            raise PveApiError(401, "authentication failure")
        renewing = password.startswith("PVE:") and self._ticket_user(password) == username
        if not renewing and not secrets.compare_digest(password, account.password):
            raise PveApiError(401, "authentication failure")
        issued = self._now()
        stamp = f"{int(issued):08X}"
        plain = f"PVE:{username}:{stamp}"
        ticket = f"{plain}::{self._sign(plain)}"
        self._tickets[ticket] = (username, issued)
        return {
            "username": username,
            "ticket": ticket,
            "CSRFPreventionToken": self.csrf_token(username, stamp),
            "clustername": cluster_name,
            "cap": {},
        }

    def csrf_token(self, username: str, stamp: str) -> str:
        return f"{stamp}:{self._sign(f'{stamp}:{username}')}"

    def _ticket_user(self, ticket: str) -> str | None:
        entry = self._tickets.get(ticket)
        if entry is None or self._now() - entry[1] > TICKET_LIFETIME:
            return None
        return entry[0]

    def authenticate(self, headers, cookies, method: str) -> Identity:
        """Token header, or ticket cookie (+ CSRF header on writes); 401 with PVE's reasons."""
        authorization = headers.get("Authorization", "")
        if authorization.startswith("PVEAPIToken"):
            return self._token_identity(authorization)
        ticket = cookies.get("PVEAuthCookie") or headers.get("PVEAuthCookie")
        if not ticket:
            raise PveApiError(401, "No ticket")
        username = self._ticket_user(ticket)
        if username is None:
            raise PveApiError(401, AUTH_FAILED)
        if method != "GET":
            csrf = headers.get("CSRFPreventionToken", "")
            stamp = ticket.split(":")[2] if ticket.count(":") >= 3 else ""
            if not secrets.compare_digest(csrf, self.csrf_token(username, stamp)):
                raise PveApiError(401, "Permission denied - invalid csrf token")
        return Identity(username, self.accounts[username].privileges, True)

    def _token_identity(self, authorization: str) -> Identity:
        value = authorization[len("PVEAPIToken") :].lstrip(" =")
        tokenid, sep, secret = value.rpartition("=")
        userid, bang, name = tokenid.partition("!")
        account = self.accounts.get(userid)
        if (
            not sep
            or not bang
            or account is None
            or name not in account.tokens
            or not secrets.compare_digest(secret, account.tokens[name])
        ):
            raise PveApiError(401, AUTH_FAILED)
        return Identity(tokenid, account.privileges, False)
