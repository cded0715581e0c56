"""A hostile Proxmox VE look-alike for tests: HTTPS that answers whatever a test scripts.

``HostileServer`` serves a small valid cluster by default; a test replaces any path's answer with
a malformed body, an error status, a redirect, a huge or endless body, or a slow drip, and reads
back what pvetop sent (``requests``). ``DivertingProxy`` is an HTTP CONNECT proxy that tunnels
every connection to another server (an impostor) whatever the client asked for. Both are stdlib
(``http.server``, ``socketserver``, ``ssl``) with certificates from ``trustme``.
"""

from __future__ import annotations

import hashlib
import json
import select
import socket
import socketserver
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme

from pvetop.config import ConnectionSettings

TOKEN_SECRET = "hostile-token-secret"
PASSWORD = "hostile-password"


@dataclass
class Answer:
    """One scripted answer: status, headers, body; ``drip`` seconds between bytes; ``endless`` never
    ends; ``hang_up`` closes the connection without a word (a dropped connection)."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drip: float = 0.0
    endless: bool = False
    hang_up: bool = False


def data(value: Any, status: int = 200) -> Answer:
    """A PVE-style ``{"data": ...}`` JSON answer."""
    return Answer(status, json.dumps({"data": value}).encode(), {"Content-Type": "application/json"})


def raw(body: bytes | str, status: int = 200, **headers: str) -> Answer:
    """Exactly these bytes as the body (JSON content type unless told otherwise)."""
    payload = body.encode() if isinstance(body, str) else body
    return Answer(status, payload, {"Content-Type": "application/json", **headers})


def redirect(location: str, status: int = 302) -> Answer:
    return Answer(status, b"", {"Location": location})


def drip(body: bytes | str, seconds_per_byte: float) -> Answer:
    """The answer one byte at a time (headers included), as a hostile or broken server might."""
    return Answer(
        200,
        body.encode() if isinstance(body, str) else body,
        {"Content-Type": "application/json"},
        drip=seconds_per_byte,
    )


def endless() -> Answer:
    """A 200 whose JSON body never ends (chunked, as fast as the client reads)."""
    return Answer(200, b"", {"Content-Type": "application/json"}, endless=True)


def hang_up() -> Answer:
    return Answer(hang_up=True)


def in_turn(*answers: Answer) -> Callable[[str], Answer]:
    """The answers one after the other, the last one from then on."""
    queue = list(answers)

    def next_answer(method: str) -> Answer:
        return queue.pop(0) if len(queue) > 1 else queue[0]

    return next_answer


def default_cluster() -> dict[str, Answer]:
    """A valid two-node cluster with two guests: what every path answers until a test says otherwise."""
    resources = [
        {"type": "node", "node": "pve1", "id": "node/pve1", "status": "online", "cpu": 0.1, "maxcpu": 8,
         "mem": 2 << 30, "maxmem": 16 << 30, "disk": 1, "maxdisk": 2, "uptime": 100},
        {"type": "node", "node": "pve2", "id": "node/pve2", "status": "online", "cpu": 0.2, "maxcpu": 8,
         "mem": 4 << 30, "maxmem": 16 << 30, "disk": 1, "maxdisk": 2, "uptime": 100},
        {"type": "qemu", "vmid": 100, "node": "pve1", "id": "qemu/100", "status": "running", "name": "web",
         "cpu": 0.5, "maxcpu": 2, "mem": 1 << 30, "maxmem": 2 << 30, "tags": "a;b"},
        {"type": "lxc", "vmid": 101, "node": "pve2", "id": "lxc/101", "status": "stopped", "name": "db"},
    ]  # fmt: skip
    status = [
        {"type": "cluster", "id": "cluster", "name": "hostile", "quorate": 1, "nodes": 2, "version": 2},
        {"type": "node", "id": "node/pve1", "name": "pve1", "nodeid": 1, "ip": "10.0.0.1", "online": 1},
        {"type": "node", "id": "node/pve2", "name": "pve2", "nodeid": 2, "ip": "10.0.0.2", "online": 1},
    ]
    return {
        "/api2/json/version": data({"version": "9.0.3", "release": "9.0", "repoid": "deadbeef"}),
        "/api2/json/cluster/options": data({"crs": "ha=static"}),
        "/api2/json/cluster/ha/rules": data([]),
        "/api2/json/cluster/config/nodes": data([{"node": "pve1", "quorum_votes": 1}, {"node": "pve2"}]),
        "/api2/json/cluster/resources": data(resources),
        "/api2/json/cluster/status": data(status),
        "/api2/json/access/ticket": data({"ticket": "PVE:root@pam:TICKET", "CSRFPreventionToken": "CSRF"}),
    }


@dataclass(frozen=True)
class Seen:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's signature
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        hostile = self.server.owner
        hostile.requests.append(Seen(self.command, path, dict(self.headers.items()), body))
        answer = hostile.answer_for(self.command, path)
        try:
            self._send(answer)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True

    do_GET = do_POST = do_PUT = do_DELETE = _answer

    def _send(self, answer: Answer) -> None:
        if answer.hang_up:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        reason = self.responses.get(answer.status, ("Unknown",))[0]
        head = [f"HTTP/1.1 {answer.status} {reason}"]
        head += [f"{name}: {value}" for name, value in answer.headers.items()]
        if answer.endless:
            head.append("Transfer-Encoding: chunked")
        else:
            head.append(f"Content-Length: {len(answer.body)}")
        wire = ("\r\n".join(head) + "\r\n\r\n").encode() + (b"" if answer.endless else answer.body)
        if answer.drip:
            for index in range(len(wire)):
                if self.server.owner.stopping.is_set():
                    return
                self.wfile.write(wire[index : index + 1])
                self.wfile.flush()
                time.sleep(answer.drip)
            return
        self.wfile.write(wire)
        if answer.endless:
            chunk = b'{"data": [' + b'{"type": "pool", "pool": "p"},' * 2000
            frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
            while not self.server.owner.stopping.is_set():
                self.wfile.write(frame)
                self.server.owner.endless_bytes_sent += len(chunk)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    owner: HostileServer


class HostileServer:
    """HTTPS on 127.0.0.1 with a trustme certificate; ``answers`` maps a path to an ``Answer``."""

    def __init__(self, ca: trustme.CA | None = None, *, tmp_dir: Path) -> None:
        self.ca = ca or trustme.CA()
        self.answers: dict[str, Answer | Callable[[str], Answer]] = default_cluster()
        self.requests: list[Seen] = []
        self.stopping = threading.Event()
        self.endless_bytes_sent = 0
        cert = self.ca.issue_cert("127.0.0.1", "localhost")
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(context)
        self.fingerprint = _colon_hex(
            hashlib.sha256(ssl.PEM_cert_to_DER_cert(cert.cert_chain_pems[0].bytes().decode())).hexdigest()
        )
        self.ca_file = tmp_dir / f"hostile-ca-{id(self)}.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.owner = self
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="hostile-https", daemon=True)

    def answer_for(self, method: str, path: str) -> Answer:
        answer = self.answers.get(path)
        if answer is None:
            return raw(b'{"data": null, "errors": {"path": "no such path"}}', 501)
        return answer(method) if callable(answer) else answer

    def set(self, path: str, answer: Answer | Callable[[str], Answer]) -> None:
        """Answer ``/api2/json/<path>`` with ``answer`` from now on."""
        self.answers["/api2/json/" + path.strip("/")] = answer

    def seen(self, path: str) -> list[Seen]:
        return [r for r in self.requests if r.path == "/api2/json/" + path.strip("/")]

    def settings(self, *, pin: bool = False, **changes: Any) -> ConnectionSettings:
        """Token settings for this server: CA-verified, or pinned by fingerprint with ``pin``."""
        values: dict[str, Any] = {
            "hosts": (("127.0.0.1", self.port),),
            "user": "root@pam",
            "token_name": "pvetop",
            "token_value": TOKEN_SECRET,
            "verify": False if pin else str(self.ca_file),
            "fingerprint": self.fingerprint if pin else None,
            "timeout": 5.0,
        }
        values.update(changes)
        return ConnectionSettings(**values)

    def __enter__(self) -> HostileServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()


class DivertingProxy:
    """An HTTP CONNECT proxy that tunnels every CONNECT to ``divert_to`` (host, port), whatever was asked."""

    def __init__(self, divert_to: tuple[str, int]) -> None:
        self.divert_to = divert_to
        self.asked: list[str] = []
        proxy = self

        class Tunnel(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                request_line = self.rfile.readline(65536).decode("latin-1").strip()
                while self.rfile.readline(65536) not in (b"\r\n", b"\n", b""):
                    pass
                method, _, rest = request_line.partition(" ")
                if method != "CONNECT":
                    self.wfile.write(b"HTTP/1.1 405 Method Not Allowed\r\nContent-Length: 0\r\n\r\n")
                    return
                proxy.asked.append(rest.split(" ", 1)[0])
                with socket.create_connection(proxy.divert_to, timeout=10) as upstream:
                    self.wfile.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
                    self.wfile.flush()
                    try:
                        _pipe(self.connection, upstream)
                    except OSError:  # either side hung up mid-copy
                        pass

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Tunnel)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="diverting-proxy", daemon=True)

    def __enter__(self) -> DivertingProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


class DroppingForwarder:
    """A TCP port forwarder to ``target`` that hangs up on the first ``drop`` connections as soon
    as the client has spoken (a load balancer or NAT dropping a connection), then forwards every
    later one."""

    def __init__(self, target: tuple[str, int], *, drop: int = 1) -> None:
        self.dropped = 0
        self.forwarded = 0
        forwarder = self

        class Forward(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                if forwarder.dropped < drop:
                    forwarder.dropped += 1
                    self.request.recv(65536)  # the TLS ClientHello: the client hears EOF mid-handshake
                    self.request.close()
                    return
                forwarder.forwarded += 1
                with socket.create_connection(target, timeout=10) as upstream:
                    try:
                        _pipe(self.request, upstream)
                    except OSError:
                        pass

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Forward)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, name="dropping-forwarder", daemon=True)

    def __enter__(self) -> DroppingForwarder:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()


def _pipe(a: socket.socket, b: socket.socket) -> None:
    """Copies bytes both ways until either side closes."""
    sockets = [a, b]
    while True:
        readable, _, _ = select.select(sockets, [], [], 10)
        if not readable:
            return
        for source in readable:
            chunk = source.recv(65536)
            if not chunk:
                return
            (b if source is a else a).sendall(chunk)


def _colon_hex(digits: str) -> str:
    digits = digits.upper()
    return ":".join(digits[i : i + 2] for i in range(0, len(digits), 2))
