"""Starts a simulated cluster in a background thread: HTTPS API + UDP wake-on-LAN listener.

    with start_sim(scenario="homelab", seed=1, manual_clock=True) as sim:
        api = ProxmoxAPI(sim.info["host"], port=sim.info["port"], user=sim.info["user"],
                         token_name=sim.info["token_name"], token_value=sim.info["token_value"],
                         verify_ssl=sim.info["ca_file"])
        sim.cluster.step(30)

The thread runs its own asyncio loop; the cluster is shared with the caller under its lock.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

from aiohttp import web

from pvetop.sim.auth import Auth
from pvetop.sim.cluster import SimCluster
from pvetop.sim.scenarios import load_scenario
from pvetop.sim.server import SimServer
from pvetop.sim.tls import make_tls
from pvetop.sim.wol import WolProtocol

HOST = "127.0.0.1"
INFO_KEYS = (
    "host",
    "port",
    "user",
    "password",
    "token_name",
    "token_value",
    "ca_file",
    "fingerprint",
    "wol_port",
    "control_url",
)


class RunningSim:
    """A started simulator: ``info`` says how to connect, ``cluster`` is its state machine."""

    def __init__(self, cluster: SimCluster, auth: Auth, *, port: int, wol_port: int, auth_failure_delay: float):
        self.cluster = cluster
        self.auth = auth
        self._auth_failure_delay = auth_failure_delay
        self._requested_port = port
        self._requested_wol_port = wol_port
        self._tls = make_tls()
        cluster.fingerprint = self._tls.fingerprint
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="pvetop-sim", daemon=True)
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._runner: web.AppRunner | None = None
        self._wol_transport = None
        self.port = 0
        self.wol_port = 0

    # ----- lifecycle ----------------------------------------------------------------------
    def _start(self) -> RunningSim:
        self._thread.start()
        self._ready.wait()
        if self._startup_error is not None:
            self._thread.join()
            self._tls.cleanup()
            raise self._startup_error
        return self

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to the starting thread
            self._startup_error = exc
            self._ready.set()
            return
        self._ready.set()
        self._loop.run_forever()
        self._loop.run_until_complete(self._shutdown())
        self._loop.close()

    async def _serve(self) -> None:
        server = SimServer(self.cluster, self.auth, auth_failure_delay=self._auth_failure_delay)
        self._runner = web.AppRunner(server.app(), access_log=None, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, HOST, self._requested_port, ssl_context=self._tls.context, reuse_address=True)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: WolProtocol(self.cluster.wake_by_mac), local_addr=(HOST, self._requested_wol_port)
        )
        self._wol_transport = transport
        self.wol_port = transport.get_extra_info("sockname")[1]

    async def _shutdown(self) -> None:
        if self._wol_transport is not None:
            self._wol_transport.close()
        if self._runner is not None:
            await self._runner.cleanup()

    def stop(self) -> None:
        """Stops serving and removes the CA file; safe to call twice."""
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
        self._tls.cleanup()

    def __enter__(self) -> RunningSim:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    # ----- connection details -------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://{HOST}:{self.port}/api2/json"

    @property
    def ca_file(self) -> Path:
        return self._tls.ca_file

    @property
    def info(self) -> dict:
        """How to reach the sim: ``INFO_KEYS`` (root, token and password) plus the read-only
        auditor's ``readonly_user``, ``readonly_password``, ``readonly_token_name`` and
        ``readonly_token_value``."""
        readonly = self.readonly_info
        return {
            "host": HOST,
            "port": self.port,
            "user": self.auth.root.userid,
            "password": self.auth.root.password,
            "token_name": "pvetop",
            "token_value": self.auth.root.tokens["pvetop"],
            "ca_file": str(self.ca_file),
            "fingerprint": self._tls.fingerprint,
            "wol_port": self.wol_port,
            "control_url": f"https://{HOST}:{self.port}/sim",
            **{f"readonly_{key}": value for key, value in readonly.items()},
        }

    @property
    def readonly_info(self) -> dict:
        """The read-only auditor (Sys.Audit, VM.Audit, Datastore.Audit): for 403 checks."""
        return {
            "user": self.auth.auditor.userid,
            "password": self.auth.auditor.password,
            "token_name": "readonly",
            "token_value": self.auth.auditor.tokens["readonly"],
        }


def start_sim(
    scenario: str | Path = "homelab",
    seed: int = 1,
    speed: float = 1.0,
    port: int = 0,
    wol_port: int = 0,
    manual_clock: bool = False,
    start_time=None,
    password: str | None = None,
    auth_failure_delay: float = 0.0,
) -> RunningSim:
    """Builds the cluster and serves it on 127.0.0.1 (port 0 = a free port).

    ``auth_failure_delay``: seconds to wait before each 401, as real PVE does (3 s); 0 keeps tests fast.
    """
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # dropped connections are on purpose
    cluster = SimCluster(
        load_scenario(scenario, seed), seed=seed, speed=speed, manual_clock=manual_clock, start_time=start_time
    )
    auth = Auth(lambda: cluster.now, root_password=password)
    return RunningSim(cluster, auth, port=port, wol_port=wol_port, auth_failure_delay=auth_failure_delay)._start()
