"""Which pvetop instance acts on the cluster, seen from the dashboard.

Dashboards and daemons sharing one rules store share one lease per cluster: the instance holding
it may act (automatic moves, power changes), every other one advises. The dashboard keeps its own
claim alive, says in the header who acts when it is not this instance, and lets the user take
the lease over (``ctrl+t`` or the command palette), after a confirmation; the store journals it.
"""

from __future__ import annotations

import asyncio
from typing import Any

from pvetop.engine.intents import IntentLog
from pvetop.engine.lease import LeaseKeeper
from pvetop.store.coordination import LeaseState
from pvetop.ui.migrate.confirm import ConfirmScreen

KEY = "ctrl+t"
NOTE = "acting"


class ActingController:
    """The dashboard's lease: claimed once the cluster's name is known, renewed in the background."""

    def __init__(self, app: Any, store: Any) -> None:
        self.app = app
        self.store = store
        self.lease: LeaseKeeper | None = None
        self.intents: IntentLog | None = None
        self._renewing: asyncio.Task[None] | None = None

    def on_refresh(self, latest: Any) -> None:
        """Claims the lease as soon as the cluster's name is known (not only at the first move), so
        the header says at once when another instance acts."""
        if latest is not None:
            self.intents_for(latest.snapshot.cluster_name)

    def intents_for(self, cluster: str) -> IntentLog | None:
        """The intent log the migration executor writes automatic moves to (None: no store, or
        read-only: this dashboard never acts, so it claims nothing)."""
        if self.store is None or not cluster or self.app.read_only:
            return None
        if self.lease is None or self.lease.cluster != cluster:
            app = self.app
            self.lease = LeaseKeeper(
                self.store, cluster, clock=app.clock, clock_speed=app.clock_speed, on_change=self._changed
            )
            self.intents = IntentLog(self.store, cluster, self.lease, clock=app.clock)
            # a plain task, not a worker: it lives as long as the app (workers are waited on to finish)
            self._renewing = asyncio.get_running_loop().create_task(self.lease.run(), name="lease")
        return self.intents

    def _changed(self, _state: LeaseState | None) -> None:
        lease = self.lease
        if lease is None or lease.acting:
            self.app.header_notes.pop(NOTE, None)  # acting is the normal case: nothing to say
        else:
            self.app.header_notes[NOTE] = f"{lease.describe()} (advising only; {KEY} takes over)"

    def action_take_over(self) -> None:
        lease = self.lease
        if lease is None:
            self.app.notify("no shared rules store or cluster yet: nothing to take over", timeout=5)
            return
        if lease.acting:
            self.app.notify("this dashboard already acts on the cluster", timeout=4)
            return
        question = (
            f"Take over acting on cluster {lease.cluster}?\n\n{lease.describe()}.\n"
            "This dashboard's balancer and power policy will act in their modes; the other instance "
            "only advises from its next renewal. The take-over is journaled."
        )
        self.app.push_screen(ConfirmScreen(question, yes="Take over"), self._confirmed)

    def _confirmed(self, confirmed: bool | None) -> None:
        if confirmed and self.lease is not None:
            self.app.run_worker(self._take_over(), group="lease-take-over", exit_on_error=False)

    async def _take_over(self) -> None:
        assert self.lease is not None
        await self.lease.take_over()
        self.app.notify(self.lease.describe(), title="Take over", timeout=5)

    async def stop(self) -> None:
        """Ends the renewals and releases the lease (another instance need not wait it out)."""
        if self.lease is not None and self._renewing is not None:
            self.lease.stop()
            await self._renewing


def install_acting(app: Any, store: Any) -> ActingController:
    """Call once, before ``app.run()``."""
    controller = ActingController(app, store)
    app.acting = controller
    app.watch(app, "latest", controller.on_refresh, init=False)
    app.add_app_binding(KEY, "take_over", "Take over acting", binding_id="app.take_over")
    return controller
