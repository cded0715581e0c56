"""Keeping the acting-instance lease of one cluster, beside the workers.

Every pvetop instance (dashboard or daemon) runs one ``LeaseKeeper``. It claims the lease at
start and renews it every few seconds; the instance whose claim wins acts (automation in
``auto`` may call the API), every other one stays advisory and shows who acts. A holder that
stops renewing (killed, suspended, cut off) is replaced when its lease expires (``ttl``, 20 s
by default, so a dead holder is replaced within about 25 s); a store blip shorter than the lease
changes nothing, because the holder keeps acting until its own lease would have expired.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from pvetop.store.coordination import LeaseState

DEFAULT_TTL = 20.0
log = logging.getLogger(__name__)


@dataclass
class LeaseKeeper:
    """Claims and renews ``cluster``'s lease through ``store`` (calls run in a thread)."""

    store: Any
    cluster: str
    ttl: float = DEFAULT_TTL
    clock: Callable[[], float] = time.time
    clock_speed: float = 1.0  # clock seconds per real second (the demo's simulated clock runs faster)
    on_change: Callable[[LeaseState | None], None] | None = None
    state: LeaseState | None = None
    last_error: str | None = None
    _stopped: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def renew_every(self) -> float:
        """Real seconds between renewals: a quarter of the lease, which is in clock seconds."""
        return self.ttl / 4 / self.clock_speed

    @property
    def acting(self) -> bool:
        """True while this instance holds a lease that has not expired (by its own clock)."""
        return bool(self.state and self.state.acting and self.clock() < self.state.expires_at)

    @property
    def token(self) -> int | None:
        return self.state.token if self.acting and self.state else None

    def describe(self) -> str:
        """One line for the header and the daemon's log."""
        if self.state is None:
            return "acting instance: unknown" + (f" ({self.last_error})" if self.last_error else "")
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.state.since))
        who = "this instance" if self.acting else self.state.describe()
        return f"acting instance: {who} since {since}"

    async def claim(self, *, take_over: bool = False) -> LeaseState | None:
        """One claim or renewal; a store failure keeps the last state (and so, until it expires, the lease)."""
        before = (self.state.acting, self.state.token, self.state.host, self.state.pid) if self.state else None
        try:
            self.state = await asyncio.to_thread(
                self.store.coordination.claim, self.cluster, ttl=self.ttl, take_over=take_over
            )
            self.last_error = None
        except Exception as exc:  # the store is unreachable for a moment: keep what we had
            self.last_error = f"cannot reach the rules store: {exc}"
            log.warning("lease of %s not renewed: %s", self.cluster, exc)
        after = (self.state.acting, self.state.token, self.state.host, self.state.pid) if self.state else None
        if after != before and self.on_change is not None:
            self.on_change(self.state)
        return self.state

    async def take_over(self) -> LeaseState | None:
        """The user asked this instance to act now, whoever holds the lease (journaled by the store)."""
        return await self.claim(take_over=True)

    async def run(self) -> None:
        """Claims, then renews until ``stop()``; releases the lease on the way out."""
        try:
            while not self._stopped.is_set():
                await self.claim()
                try:
                    await asyncio.wait_for(self._stopped.wait(), timeout=self.renew_every)
                except TimeoutError:
                    pass
        finally:
            if self.acting and self.state is not None:
                try:
                    await asyncio.to_thread(self.store.coordination.release, self.cluster)
                    self.state = replace(self.state, acting=False)
                except Exception as exc:
                    log.warning("lease of %s not released (it expires by itself): %s", self.cluster, exc)

    def stop(self) -> None:
        self._stopped.set()
