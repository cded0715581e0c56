"""Where the dashboard gets its data: the PVE client, or a fixed snapshot held in memory.

The app only needs these seven calls, so it runs unchanged against a real cluster, the simulator
(through the same client) and, for stable screenshots and fast tests, ``MemorySource``.
All calls block and are made from worker threads, never from the UI thread.
"""

from __future__ import annotations

from typing import Any, Protocol

from pvetop.errors import PvetopError
from pvetop.model import ClusterSnapshot, Guest


class SnapshotSource(Protocol):
    def fetch_snapshot(self) -> ClusterSnapshot: ...

    @property
    def slow_data_due(self) -> bool:
        """True when the rarely changing data (cluster options, HA rules) should be re-read."""

    def refresh_slow_data(self) -> Any: ...

    def node_rrddata(self, node: str, timeframe: str = "hour") -> list[dict[str, Any]]: ...

    def guest_rrddata(self, guest: Guest, timeframe: str = "hour") -> list[dict[str, Any]]: ...

    def guest_config(self, guest: Guest) -> dict[str, Any]: ...

    def node_config(self, node: str) -> dict[str, Any]: ...

    def node_status(self, node: str) -> dict[str, Any]: ...


class MemorySource:
    """A cluster that only changes when told to: for snapshot tests and screenshots.

    ``fail_with`` makes every call raise (an outage); ``snapshot`` can be swapped at any time.
    """

    def __init__(
        self,
        snapshot: ClusterSnapshot,
        *,
        rrddata: dict[str, list[dict[str, Any]]] | None = None,
        configs: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.snapshot = snapshot
        self.rrddata = rrddata or {}
        self.configs = configs or {}
        self.fail_with: PvetopError | None = None
        self.fetches = 0
        self.slow_data_due = False

    def _check(self) -> None:
        if self.fail_with is not None:
            raise self.fail_with

    def fetch_snapshot(self) -> ClusterSnapshot:
        self._check()
        self.fetches += 1
        return self.snapshot

    def refresh_slow_data(self) -> None:
        self._check()

    def node_rrddata(self, node: str, timeframe: str = "hour") -> list[dict[str, Any]]:
        self._check()
        return self.rrddata.get(f"node/{node}", [])

    def guest_rrddata(self, guest: Guest, timeframe: str = "hour") -> list[dict[str, Any]]:
        self._check()
        return self.rrddata.get(f"guest/{guest.vmid}", [])

    def guest_config(self, guest: Guest) -> dict[str, Any]:
        self._check()
        return self.configs.get(f"guest/{guest.vmid}", {})

    def node_config(self, node: str) -> dict[str, Any]:
        self._check()
        return self.configs.get(f"node/{node}", {})

    def node_status(self, node: str) -> dict[str, Any]:
        self._check()
        return self.configs.get(f"status/{node}", {})
