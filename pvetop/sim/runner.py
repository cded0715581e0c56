"""Starts a simulated cluster in a background thread: HTTPS API + UDP wake-on-LAN listener.

    with start_sim(scenario="homelab", seed=1, manual_clock=True) as sim:
        api = ProxmoxAPI(sim.info["host"], port=sim.info["port"], user=sim.info["user"],
                         token_name=sim.info["token_name"], token_value=sim.info["token_value"],
                         verify_ssl=sim.info["ca_file"])
        sim.cluster.step(30)

Each node serves the API on a port of its own, as every PVE node runs its own pveproxy: while a
node is off or crashed its port refuses connections (``info["endpoints"]`` lists them; ``host``
and ``port`` are the first node's). The /sim control API has a port of its own that never goes
away. The thread runs its own asyncio loop; the cluster is shared with the caller under its lock.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from pathlib import Path

from aiohttp import web

from pvetop.sim.auth import Auth
from pvetop.sim.cluster import SimCluster
from pvetop.sim.entities import SimNode
from pvetop.sim.scenarios import load_scenario
from pvetop.sim.server import LOST_ANSWER_SECONDS, SimServer
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
    "endpoints",
)
SHUTDOWN_SECONDS = 0.2  # a dying node's in-flight requests get this long before their connections drop


class _Endpoint:
    """One node's API port: listening while the node answers, closed (refusing) while it is down."""

    def __init__(self, node: str, requested_port: int) -> None:
        self.node = node
        self.port = requested_port
        self.runner: web.AppRunner | None = None
        self.lock = asyncio.Lock()


class RunningSim:
    """A started simulator: ``info`` says how to connect, ``cluster`` is its state machine."""

    def __init__(
        self,
        cluster: SimCluster,
        auth: Auth,
        *,
        port: int,
        wol_port: int,
        auth_failure_delay: float,
        lost_answer_hold: float,
    ):
        self.cluster = cluster
        self.auth = auth
        self._auth_failure_delay = auth_failure_delay
        self._lost_answer_hold = lost_answer_hold
        self._requested_wol_port = wol_port
        self._tls = make_tls()
        cluster.fingerprint = self._tls.fingerprint
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name="pvetop-sim", daemon=True)
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None
        self._server: SimServer | None = None
        self._endpoints = [_Endpoint(name, port if index == 0 else 0) for index, name in enumerate(cluster.nodes)]
        self._control: web.AppRunner | None = None
        self._wol_transport: asyncio.DatagramTransport | None = None
        self.control_port = 0
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
        self._server = SimServer(
            self.cluster,
            self.auth,
            auth_failure_delay=self._auth_failure_delay,
            lost_answer_hold=self._lost_answer_hold,
        )
        self._control, self.control_port = await self._listen(self._server.control_app(), 0)
        for endpoint in self._endpoints:
            # every port is bound once, so it is known (and kept) even for a node that starts off
            endpoint.runner, endpoint.port = await self._listen(self._server.app(endpoint.node), endpoint.port)
            await self._apply_power(endpoint)
        transport, _ = await self._loop.create_datagram_endpoint(
            lambda: WolProtocol(self.cluster.wake_by_mac), local_addr=(HOST, self._requested_wol_port)
        )
        self._wol_transport = transport
        self.wol_port = transport.get_extra_info("sockname")[1]
        self.cluster.power_listeners.append(self._power_changed)

    async def _listen(self, app: web.Application, port: int) -> tuple[web.AppRunner, int]:
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_SECONDS)
        await runner.setup()
        site = web.TCPSite(runner, HOST, port, ssl_context=self._tls.context, reuse_address=True)
        await site.start()
        return runner, runner.addresses[0][1]

    def _power_changed(self, node: SimNode) -> None:
        """Called by the cluster (any thread, under its lock): reconcile that node's port soon."""
        if self._loop.is_closed():
            return
        for endpoint in self._endpoints:
            if endpoint.node == node.name:
                self._loop.call_soon_threadsafe(lambda e: self._loop.create_task(self._apply_power(e)), endpoint)

    async def _apply_power(self, endpoint: _Endpoint) -> None:
        """Opens the node's port while it answers the API, closes it (connections too) when it does not."""
        assert self._server is not None
        async with endpoint.lock:
            reachable = self.cluster.nodes[endpoint.node].reachable
            if reachable and endpoint.runner is None:
                endpoint.runner, _ = await self._listen(self._server.app(endpoint.node), endpoint.port)
            elif not reachable and endpoint.runner is not None:
                runner, endpoint.runner = endpoint.runner, None
                await runner.cleanup()

    def settle(self) -> None:
        """Waits until every node's port matches its power state (call it outside the cluster lock:
        after stepping a node down, its port refuses once this returns)."""

        async def apply_all() -> None:
            for endpoint in self._endpoints:
                await self._apply_power(endpoint)

        asyncio.run_coroutine_threadsafe(apply_all(), self._loop).result(timeout=30)

    async def _shutdown(self) -> None:
        if self._wol_transport is not None:
            self._wol_transport.close()
        for runner in [e.runner for e in self._endpoints] + [self._control]:
            if runner is not None:
                await runner.cleanup()

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
    def port(self) -> int:
        """The first node's API port."""
        return self._endpoints[0].port

    @property
    def endpoints(self) -> list[dict]:
        """Every node's API endpoint, in node order: ``[{node, host, port}]``."""
        return [{"node": e.node, "host": HOST, "port": e.port} for e in self._endpoints]

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
            "control_url": f"https://{HOST}:{self.control_port}/sim",
            "endpoints": self.endpoints,
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
    lost_answer_hold: float = LOST_ANSWER_SECONDS,
) -> RunningSim:
    """Builds the cluster and serves it on 127.0.0.1 (port 0 = a free port).

    ``auth_failure_delay``: seconds to wait before each 401, as real PVE does (3 s); 0 keeps tests fast.
    ``lost_answer_hold``: real seconds a migrate POST whose answer the faults lose holds its
    connection before it is dropped, unless the client gave up sooner (a soak that loses many
    answers keeps each one short instead of waiting out its client's timeout).
    """
    logging.getLogger("aiohttp.server").setLevel(logging.CRITICAL)  # dropped connections are on purpose
    cluster = SimCluster(
        load_scenario(scenario, seed), seed=seed, speed=speed, manual_clock=manual_clock, start_time=start_time
    )
    auth = Auth(lambda: cluster.now, root_password=password)
    return RunningSim(
        cluster,
        auth,
        port=port,
        wol_port=wol_port,
        auth_failure_delay=auth_failure_delay,
        lost_answer_hold=lost_answer_hold,
    )._start()
