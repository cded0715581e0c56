"""The dashboard's link to the rules store.

It learns the cluster's name from each snapshot, keeps ``app.ruleset`` in step with the store (so
the tables' flag columns follow, rules changed by ``pvetop pins ...`` in another shell included),
and performs the changes the rule panels ask for. Every change goes through the store, which
journals it; failures become notifications, never tracebacks.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any, TypeVar

from pvetop.errors import PvetopError
from pvetop.model import ClusterSnapshot
from pvetop.store import Store

if TYPE_CHECKING:
    from pvetop.ui.app import PvetopApp

T = TypeVar("T")


class RulesController:
    def __init__(self, app: PvetopApp, store: Store) -> None:
        self.app = app
        self.store = store

    # -- state ----------------------------------------------------------------------------------

    @property
    def snapshot(self) -> ClusterSnapshot | None:
        refresh = self.app.latest
        return refresh.snapshot if refresh is not None else None

    @property
    def cluster(self) -> str | None:
        snapshot = self.snapshot
        return snapshot.cluster_name or None if snapshot is not None else None

    @property
    def who(self) -> str:
        """The API user when the source knows it (a PveClient does), else the local user."""
        settings = getattr(self.app.source, "settings", None)
        return getattr(settings, "user", None) or getpass.getuser()

    def on_refresh(self, refresh: Any) -> None:
        """Watches ``app.latest``: each poll brings a new value (its arrival time moves), so rules
        changed elsewhere (the CLI, another pvetop) show on the next refresh. The store is read in a
        thread worker: a slow disk or a remote PostgreSQL never stalls the UI."""
        cluster = self.cluster
        if refresh is not None and cluster is not None:
            self.app.run_worker(
                partial(self._read_in_worker, cluster),
                thread=True,
                exclusive=True,
                group="rules-reload",
                exit_on_error=False,
            )

    def _read_in_worker(self, cluster: str) -> None:
        try:
            ruleset = self.store.ruleset(cluster)
        except PvetopError as exc:
            self.app.call_from_thread(self._unreadable, exc)
        else:
            self.app.call_from_thread(self._show, ruleset)
        finally:
            self.store.close()  # this worker thread's own connection

    def reload(self) -> None:
        """Reads the cluster's rules now (after a change the user just made, so it shows at once)."""
        cluster = self.cluster
        if cluster is None:
            return
        try:
            ruleset = self.store.ruleset(cluster)
        except PvetopError as exc:
            self._unreadable(exc)
            return
        self._show(ruleset)

    def _show(self, ruleset) -> None:
        """``app.ruleset`` is replaced only when the rules changed, so the tables redraw only then."""
        if ruleset != self.app.ruleset:
            self.app.ruleset = ruleset

    def _unreadable(self, exc: PvetopError) -> None:
        self.app.notify(f"cannot read the rules store: {exc}", severity="error", timeout=6)

    def change(self, describe: str, operation: Callable[[Store, str], T]) -> T | None:
        """Runs one store change for the current cluster, then shows it; None when it failed."""
        cluster = self.cluster
        if cluster is None:
            self.app.notify("no cluster data yet: wait for the first refresh", severity="warning")
            return None
        try:
            result = operation(self.store, cluster)
        except PvetopError as exc:
            self.app.notify(f"{describe} failed: {exc}", severity="error", timeout=6)
            return None
        self.reload()
        return result

    # -- guest rules ----------------------------------------------------------------------------

    def pin_here_or_unpin(self, vmid: int) -> str | None:
        """Pins a guest to the node it runs on; if it is pinned to exactly that node, unpins it."""
        guest = self.snapshot.guest_by_vmid.get(vmid) if self.snapshot else None
        cluster = self.cluster
        if guest is None or cluster is None:
            self.app.notify(f"guest {vmid} is not in the cluster", severity="warning")
            return None
        current = self.store.pin(cluster, vmid)
        if current is not None and current.nodes == {guest.node}:
            done = self.change("unpin", lambda store, cluster: store.unpin(cluster, vmid))
            message = f"{vmid} unpinned" if done else None
        else:
            done = self.change(
                "pin", lambda store, cluster: store.pin_guest(cluster, vmid, guest.name, {guest.node}, who=self.who)
            )
            message = f"{vmid} pinned to {guest.node}" if done else None
        if message:
            self.app.notify(message, timeout=3)
        return message

    def set_allowed_nodes(self, vmid: int, nodes: Iterable[str]) -> None:
        """An empty set unpins (the node-set dialog says so)."""
        nodes = frozenset(nodes)
        guest = self.snapshot.guest_by_vmid.get(vmid) if self.snapshot else None
        if not nodes:
            if self.change("unpin", lambda store, cluster: store.unpin(cluster, vmid)):
                self.app.notify(f"{vmid} unpinned", timeout=3)
            return
        name = guest.name if guest is not None else ""
        if self.change("pin", lambda store, cluster: store.pin_guest(cluster, vmid, name, nodes, who=self.who)):
            self.app.notify(f"{vmid} may run on {', '.join(sorted(nodes))}", timeout=3)

    def toggle_lock(self, vmid: int) -> None:
        guest = self.snapshot.guest_by_vmid.get(vmid) if self.snapshot else None
        cluster = self.cluster
        if cluster is None:
            self.app.notify("no cluster data yet", severity="warning")
        elif self.store.lock(cluster, vmid) is not None:
            if self.change("unlock", lambda store, cluster: store.unlock_guest(cluster, vmid)):
                self.app.notify(f"{vmid} unlocked: automatic moves allowed again", timeout=3)
        elif guest is None:
            self.app.notify(f"guest {vmid} is not in the cluster", severity="warning")
        elif self.change("lock", lambda store, cluster: store.lock_guest(cluster, vmid, guest.name, who=self.who)):
            self.app.notify(f"{vmid} locked: no automatic action will move it", timeout=3)

    # -- node rules -----------------------------------------------------------------------------

    def toggle_reserved(self, node: str) -> None:
        cluster = self.cluster
        if cluster is None:
            self.app.notify("no cluster data yet", severity="warning")
        elif self.store.reservation(cluster, node) is not None:
            if self.change("release", lambda store, cluster: store.unreserve_node(cluster, node)):
                self.app.notify(f"{node} released", timeout=3)
        elif self.change("reserve", lambda store, cluster: store.reserve_node(cluster, node, who=self.who)):
            self.app.notify(f"{node} reserved: nothing moves to or from it automatically", timeout=3)

    def save_power(self, node: str, *, wol_mac: str | None, allow_power_off: bool, boot_timeout: int) -> bool:
        done = self.change(
            "saving power settings",
            lambda store, cluster: store.set_node_power(
                cluster, node, wol_mac=wol_mac, allow_power_off=allow_power_off, boot_timeout=boot_timeout
            ),
        )
        if done:
            self.app.notify(f"{node}: power settings saved", timeout=3)
        return done is not None
