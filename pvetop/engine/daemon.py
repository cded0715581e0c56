"""The automation without a screen: balancer and power policy for ``pvetop daemon``.

One round every ``interval`` seconds: read the cluster, let the balancer and the power policy
evaluate it, and, when this instance holds the cluster's lease, act in the modes the settings
say. Before planning, the acting instance settles the intents another instance left open. Every
decision becomes one log line (``say``), the same facts the journal keeps, without secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pvetop.engine.balancer import BalancerWorker
from pvetop.engine.intents import IntentLog
from pvetop.engine.lease import DEFAULT_TTL, LeaseKeeper
from pvetop.engine.migrations import Limits, MigrationExecutor, MigrationJob
from pvetop.engine.power import PowerWorker
from pvetop.errors import PvetopError
from pvetop.model import ClusterSnapshot
from pvetop.store.coordination import LeaseState

STOP_GRACE = 30.0  # seconds a stopping daemon follows its running moves before handing them back


@dataclass
class Daemon:
    client: Any
    store: Any
    cluster: str
    say: Callable[[str], None]
    interval: float = 10.0
    read_only: bool = False
    clock: Callable[[], float] = time.time
    lease_ttl: float = DEFAULT_TTL
    poll: float = 2.0
    rounds: int = 0
    _said: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.lease = LeaseKeeper(
            self.store, self.cluster, ttl=self.lease_ttl, clock=self.clock, on_change=self._lease_changed
        )
        self.intents = IntentLog(self.store, self.cluster, self.lease, clock=self.clock, grace=self._intent_grace())
        self.executor = MigrationExecutor(
            self.client,
            store=self.store,
            cluster=self.cluster,
            limits=Limits.from_store(self.store, self.cluster),
            poll=self.poll,
            on_update=self._job_changed,
            clock=self.clock,
            intents=self.intents,
        )
        self.balancer = BalancerWorker(
            self.client,
            self.store,
            self.cluster,
            self.executor,
            clock=self.clock,
            read_only=self.read_only,
            on_update=self._balancer_changed,
        )
        self.power = PowerWorker(
            self.client,
            self.store,
            self.cluster,
            executor=self.executor,
            clock=self.clock,
            poll=self.poll,
            read_only=self.read_only,
            on_update=self._power_changed,
        )

    def _intent_grace(self) -> float:
        """How old an intent with no task must be before it counts as never sent: a request the dead
        instance had on its way is answered or given up within its deadline per host tried."""
        settings = getattr(self.client, "settings", None)
        timeout = float(getattr(settings, "timeout", 10.0))
        hosts = len(getattr(settings, "hosts", ())) or 1
        return max(30.0, 2 * timeout * hosts)

    # --- one round -----------------------------------------------------------------------------

    async def round(self) -> None:
        """Read, settle what a previous acting instance left, then let both workers evaluate (and act)."""
        self.rounds += 1
        try:
            snapshot: ClusterSnapshot = await asyncio.to_thread(self.client.fetch_snapshot)
        except PvetopError as exc:
            self._once("cluster", f"cluster: cannot read it ({exc.message}); nothing acts until it answers")
            return
        self._once("cluster", f"cluster: {self.cluster} read, {len(snapshot.nodes)} nodes, quorate={snapshot.quorate}")
        if self.lease.acting:
            pending = await self.intents.settle(self.client, snapshot)
            for settled in self.intents.settled:
                self.say(f"intents: #{settled.intent_id} {settled.outcome}: {settled.reason}")
            if pending:
                self.say(f"intents: {len(pending)} left by another instance still settling; planning waits")
                return
        await self.balancer.step(snapshot)
        await self.power.step(snapshot)

    async def run(self, stop: asyncio.Event) -> int:
        """Rounds until ``stop`` is set; then follows running moves for a while and hands back the rest."""
        await self.lease.claim()  # before the first round, so it knows whether it acts
        lease_task = asyncio.create_task(self.lease.run(), name="lease")
        self.say(
            f"daemon: started on cluster {self.cluster}, a round every {self.interval:g} s; {self.lease.describe()}"
        )
        try:
            while not stop.is_set():
                try:
                    await self.round()
                except PvetopError as exc:  # one bad round (a store or API failure) is logged, not fatal
                    self.say(f"daemon: round failed: {exc.message}")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), timeout=self.interval)
        finally:
            await self._wind_down()
            self.lease.stop()
            await lease_task
        self.say("daemon: stopped; lease released")
        return 0

    async def _wind_down(self) -> None:
        running = [job for job in self.executor.jobs if not job.state.finished]
        if running:
            self.say(f"daemon: stopping; following {len(running)} running move(s) for up to {STOP_GRACE:g} s")
        # every job's runner, the finished jobs' too: a runner closes its move's intent just after
        # the job finished, and cancelled there it left the intent open (a move done, handed back)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.executor.wait(), timeout=STOP_GRACE)
        left = [job for job in self.executor.jobs if not job.state.finished]
        for task in list(self.power.running.values()):
            task.cancel()
        await self.executor.aclose()
        if left:
            labels = ", ".join(job.label for job in left)
            self.say(f"daemon: handed back {len(left)} move(s) still running in the cluster: {labels}")
            self.say("daemon: the next acting instance follows them (their intents stay open)")

    # --- what gets said ------------------------------------------------------------------------

    def _once(self, topic: str, line: str) -> None:
        """Says a line when it differs from the last one on the same topic (no repeats every round)."""
        if self._said.get(topic) != line:
            self._said[topic] = line
            self.say(line)

    def _lease_changed(self, state: LeaseState | None) -> None:
        self.say(f"lease: {self.lease.describe()}" + (f" (term {state.token})" if state else ""))

    def _job_changed(self, job: MigrationJob) -> None:
        if job.state.finished or job.state.value == "running":
            result = job.error or job.exitstatus or job.state.value
            self._once(
                f"job{job.id}",
                f"migrate: [{job.actor}] {job.label}: {job.state.value}"
                + (f" ({result})" if job.state.finished else ""),
            )
            if job.state.finished:  # forget the jobs the executor forgot: one topic per move grew forever
                known = {f"job{other.id}" for other in self.executor.jobs}
                for topic in [t for t in self._said if t.startswith("job") and t not in known]:
                    del self._said[topic]

    def _balancer_changed(self, what: str) -> None:
        worker = self.balancer
        if what == "plan" and worker.plan is not None:
            held = f"; {len(worker.plan.held)} left alone" if worker.plan.held else ""
            paused = f" [{worker.paused}]" if worker.paused else ""
            self._once("balancer", f"balancer: mode {worker.mode}: {worker.plan.summary}{held}{paused}")
        elif what == "alert" and worker.alerts:
            self.say(f"balancer: alert: {worker.alerts[-1]}")

    def _power_changed(self, what: str) -> None:
        worker = self.power
        if what in worker.tracks:
            track = worker.tracks[what]
            self._once(
                f"power:{what}", f"power: {what}: {track.state}" + (f" ({track.detail})" if track.detail else "")
            )
        elif worker.alerts:
            self._once("power:alert", f"power: alert: {worker.alerts[-1]}")
        plan = worker.plan
        if plan is not None:
            action = plan.action
            line = f"power: {action.action} {action.summary()}" if action else "power: keep every node as it is"
            self._once("power:plan", line + (f" [{plan.paused}]" if plan.paused else ""))
