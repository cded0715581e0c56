"""The real dashboard beside the soak's daemon, in a process of its own as a user would run it.

``Dashboard`` starts ``python -m tests.soak.dashboard SETTINGS.json`` and stops it by closing its
stdin. The child opens ``PvetopApp`` with the rules store the daemon uses, as ``pvetop`` does,
headless (Textual's ``run_test``), against the simulator's endpoints through the same client;
its clock is the simulator's (read from the control API). It walks through the screens, and a
probe on its event loop records, every ``LAG_TICK``, how late the app handles a message posted
on time. What it shows the user (notifications, header notes) goes to its stdout; its figures to
a JSON file when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import itertools
import json
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import requests

from pvetop.config import settings_from_sim_info
from pvetop.pve import PveClient
from pvetop.store import open_store

LAG_TICK = 0.05  # real seconds between two lag probes
SIZE = (160, 45)
REFRESH = 2.0  # real seconds between two dashboard polls, the dashboard's default
ACTION_EVERY = 3.0  # real seconds between two keys pressed on the dashboard
# screens walked through: balancer, power, journal, HA health, storage, a guest's detail
KEYS = ("b", "escape", "W", "escape", "j", "escape", "H", "escape", "S", "escape", "down", "enter", "escape")
CLIENT_TIMEOUT = 3.0
CLOCK_POLL = 0.2  # real seconds between two reads of the simulator's time
RSS_EVERY = 10.0  # real seconds between two RSS samples
SETTLED_EVERY = 86400.0  # simulated seconds between two collected readings of memory after warm
SLOW = 0.1  # seconds of own work that make a tick slow (the figures say after which key)


@dataclass
class DashboardFigures:
    # Wall-clock lateness of each probe tick, seconds, and the part of it the dashboard was
    # working. The child keeps them in arrays of doubles: as lists of floats they were the
    # dashboard's largest growth of Python objects in a long run (a block per tick, 20 a second:
    # 36,000 of the 80,000 blocks it grew by in 72 simulated hours), which is the measurement's
    # own memory, not the app's.
    lags: Sequence[float] = field(default_factory=lambda: array("d"))
    own_lags: Sequence[float] = field(default_factory=lambda: array("d"))
    actions: int = 0
    slow_after: dict[str, list[float]] = field(default_factory=dict)  # key -> own lags over 100 ms after it
    rss_kib: list[int] = field(default_factory=list)
    blocks: list[int] = field(default_factory=list)  # Python's allocated memory blocks, sampled with rss_kib
    rss_warm_kib: int = 0  # collected and trimmed (settled_rss_kib), once the first fault cycle is over
    rss_end_kib: int = 0  # the same at the end, the app still open
    blocks_warm: int = 0  # Python's allocated blocks at the same two points, after the same full collection
    blocks_end: int = 0
    # (simulated seconds since warm, blocks, RSS KiB), collected and trimmed once a simulated day
    # after warm: whether what grew is a cache filling up (it levels off) or a leak (it does not)
    settled_daily: list[tuple[float, int, int]] = field(default_factory=list)
    full_gc: list[float] = field(default_factory=list)  # seconds each full garbage collection took
    errors: list[str] = field(default_factory=list)


class Dashboard:
    """The parent's side: starts the child, stops it, reads its figures."""

    def __init__(self, sim, store_path: str, folder: str, *, warm_after: float = 0.0) -> None:
        self.sim, self.store_path = sim, store_path
        self.warm_after = warm_after  # simulated seconds after which the child reads its warm RSS
        self.folder = Path(folder)  # its output goes there (the soak searches it for secrets)
        self.result = self.folder / "dashboard-figures.json"
        self.figures = DashboardFigures()
        self._process: subprocess.Popen | None = None

    def start(self) -> None:
        """The settings (the simulator's credentials among them) go in a file of their own that
        the child reads and removes, not among the outputs searched for secrets."""
        root = Path(__file__).resolve().parents[2]
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as settings:
            json.dump(
                {"info": self.sim.info, "store": self.store_path, "result": str(self.result), "warm": self.warm_after},
                settings,
            )
        with (self.folder / "dashboard.stdout").open("w") as out, (self.folder / "dashboard.stderr").open("w") as err:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "tests.soak.dashboard", settings.name],
                cwd=root,
                stdin=subprocess.PIPE,
                stdout=out,
                stderr=err,
            )

    def stop(self) -> DashboardFigures:
        process = self._process
        if process is None:
            return self.figures
        assert process.stdin is not None
        process.stdin.close()
        try:
            process.wait(120)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            self.figures.errors.append("the dashboard did not quit within 120 s")
        if self.result.exists():
            data = json.loads(self.result.read_text())
            data["errors"] = [*self.figures.errors, *data.get("errors", [])]
            self.figures = DashboardFigures(**data)
        if process.returncode:
            self.figures.errors.append(f"the dashboard exited with {process.returncode}")
        stderr = (self.folder / "dashboard.stderr").read_text()
        if "Traceback" in stderr:
            self.figures.errors.append("the dashboard printed a traceback: " + stderr[-400:])
        return self.figures


class _SimClock:
    """The simulator's time, read from its control API in the background."""

    def __init__(self, info: dict) -> None:
        self._url = f"{info['control_url']}/state"
        # one kept-alive connection: a TLS handshake on every read (5 a second) cost the
        # dashboard's process a tenth of a core beside the app it measures
        self._session = requests.Session()
        self._verify = info["ca_file"]  # per request: a session's own is overridden by REQUESTS_CA_BUNDLE
        self.now = self._read()
        threading.Thread(target=self._follow, name="sim-clock", daemon=True).start()

    def _read(self) -> float:
        return float(self._session.get(self._url, verify=self._verify, timeout=10).json()["time"])

    def _follow(self) -> None:
        while True:
            time.sleep(CLOCK_POLL)
            with contextlib.suppress(requests.RequestException, ValueError, KeyError):
                self.now = self._read()

    def __call__(self) -> float:
        return self.now


def settled_rss_kib() -> int:
    """This process's RSS after a full collection and glibc's ``malloc_trim(0)``: the memory in
    use, read this way in the soak's process and in the dashboard's. In the soak's, the simulator
    shares the process (pvetop never shares PVE's): its thread serving
    the dashboard and the daemon's worker threads leave freed memory in glibc's per-thread arenas.
    smb with the dashboard, from 6 to 18 simulated hours: +4.4 % read without the trim, +0.7 %
    with it, +1.3 % under MALLOC_ARENA_MAX=2, Python's allocated blocks flat (+13.6 % in 48.5 h
    without the trim: the check failed)."""
    gc.collect()
    with contextlib.suppress(OSError, AttributeError):  # not glibc: RSS as it is
        ctypes.CDLL(None).malloc_trim(0)
    return rss_kib()


def rss_kib() -> int:
    """This process's resident memory, from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class _Child:
    def __init__(self, settings: dict) -> None:
        self.settings = settings
        self.figures = DashboardFigures()
        self.last_key = "(start)"
        self._gc_started = 0.0
        gc.callbacks.append(self._gc)

    def _gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._gc_started = time.perf_counter()
        elif info["generation"] == 2:
            self.figures.full_gc.append(time.perf_counter() - self._gc_started)

    async def main(self) -> None:
        from pvetop.ui.acting import install_acting  # Textual loads only in the child
        from pvetop.ui.app import PvetopApp
        from pvetop.ui.balancer import install_balancer
        from pvetop.ui.power import install_power
        from pvetop.ui.rules import install_rules

        info = self.settings["info"]
        clock = _SimClock(info)
        connection = replace(settings_from_sim_info(info), timeout=CLIENT_TIMEOUT)
        with (
            PveClient.connect(connection, clock=clock) as client,
            open_store(self.settings["store"], clock=clock) as store,
        ):
            app = PvetopApp(client, interval=REFRESH, clock=clock)
            install_rules(app, store)
            install_balancer(app, store)
            install_power(app, store)
            install_acting(app, store)
            notify = app.notify

            def shown_notify(message, *args, **kwargs):
                print(f"notification: {message}", flush=True)
                return notify(message, *args, **kwargs)

            app.notify = shown_notify  # type: ignore[method-assign]
            loop = asyncio.get_running_loop()
            stop = asyncio.Event()
            threading.Thread(target=self._wait_for_eof, args=(loop, stop), daemon=True).start()
            async with app.run_test(size=SIZE) as pilot:
                probe = loop.create_task(self._probe(app))
                warm_at = clock() + float(self.settings.get("warm") or 0.0)
                keys = itertools.cycle(KEYS)
                self.last_key = "(start)"
                header = ""
                sampled = 0.0
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(stop.wait(), ACTION_EVERY)
                        break
                    self.last_key = next(keys)
                    await pilot.press(self.last_key)
                    self.figures.actions += 1
                    if " ".join(app.header_notes.values()) != header:
                        header = " ".join(app.header_notes.values())
                        print(f"header: {header}", flush=True)
                    if time.monotonic() - sampled >= RSS_EVERY:
                        sampled = time.monotonic()
                        self.figures.rss_kib.append(rss_kib())
                        self.figures.blocks.append(sys.getallocatedblocks())
                    warm = clock() >= warm_at and self.figures.actions >= 2 * len(KEYS)  # every screen seen twice
                    if not self.figures.rss_warm_kib and warm:
                        probe.cancel()  # the full collection below is the measurement's, not the app's lag
                        self.figures.rss_warm_kib = settled_rss_kib()
                        self.figures.blocks_warm = sys.getallocatedblocks()
                        warm_at = clock()
                        probe = loop.create_task(self._probe(app))
                    elif self.figures.rss_warm_kib and clock() - warm_at >= SETTLED_EVERY * (
                        len(self.figures.settled_daily) + 1
                    ):
                        probe.cancel()
                        rss = settled_rss_kib()
                        self.figures.settled_daily.append((clock() - warm_at, sys.getallocatedblocks(), rss))
                        probe = loop.create_task(self._probe(app))
                probe.cancel()
                self.figures.rss_end_kib = settled_rss_kib()
                self.figures.blocks_end = sys.getallocatedblocks()
        self.figures.rss_kib.append(rss_kib())

    @staticmethod
    def _wait_for_eof(loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
        sys.stdin.read()
        loop.call_soon_threadsafe(stop.set)

    async def _probe(self, app) -> None:
        """Each tick's lateness twice: on the wall clock, and as far as the dashboard was working
        meanwhile (its CPU time since the probe went to sleep): the second leaves out the time
        other processes kept it waiting, which on a shared 2-core machine dwarfs the rest."""
        loop = asyncio.get_running_loop()
        tick = loop.time() + LAG_TICK
        while True:
            slept_at = time.thread_time()
            await asyncio.sleep(max(0.0, tick - loop.time()))
            app.call_later(self._handled, loop, tick, slept_at)
            tick += LAG_TICK
            while tick < loop.time():  # ticks the loop slept through were late too
                self._late(loop.time() - tick, time.thread_time() - slept_at)
                tick += LAG_TICK

    def _handled(self, loop: asyncio.AbstractEventLoop, due: float, slept_at: float) -> None:
        self._late(max(0.0, loop.time() - due), time.thread_time() - slept_at)

    def _late(self, lateness: float, working: float) -> None:
        own = min(lateness, working)
        self.figures.lags.append(lateness)
        self.figures.own_lags.append(own)
        if own > SLOW:
            self.figures.slow_after.setdefault(self.last_key, []).append(own)


def main(argv: list[str]) -> int:
    path = Path(argv[0])
    settings = json.loads(path.read_text())
    path.unlink()
    child = _Child(settings)
    code = 0
    try:
        asyncio.run(child.main())
    except Exception as exc:  # noqa: BLE001 (reported to the soak, which counts it)
        where = traceback.extract_tb(exc.__traceback__)[-1]
        child.figures.errors.append(f"dashboard raised {exc!r} at {where.filename}:{where.lineno}")
        code = 1
    Path(settings["result"]).write_text(json.dumps(child.figures.__dict__, default=list))  # the arrays
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
