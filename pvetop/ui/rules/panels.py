"""The rules part of the detail panes: what binds this guest or node, and the keys to change it.

Mounted by the detail screens from ``app.detail_panels``; the panel takes focus when the pane
opens, so its keys work at once. Its text follows each refresh and each change.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.binding import Binding
from textual.worker import get_current_worker

from pvetop.pve.actions import parse_wakeonlan
from pvetop.store.validate import normalise_mac
from pvetop.text import visible
from pvetop.ui.detail import follow_refreshes
from pvetop.ui.guard import ReadOnlyGuard
from pvetop.ui.rules.controller import RulesController
from pvetop.ui.rules.dialogs import NodeSetDialog, PowerForm, PowerSettingsDialog
from pvetop.ui.sized_static import SizedStatic

if TYPE_CHECKING:
    from pvetop.ui.app import PvetopApp


def _since(epoch: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(epoch)) if epoch else "?"


class RulesPanel(ReadOnlyGuard, SizedStatic):
    """Shared frame: a bordered, focusable text that re-renders on refresh."""

    if TYPE_CHECKING:
        app: PvetopApp  # opened by the dashboard app only

    DEFAULT_CSS = """
    RulesPanel { height: auto; border: round $primary; padding: 0 1; }
    RulesPanel:focus { border: round $accent; }
    """
    can_focus = True

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.border_title = "rules"

    @property
    def controller(self) -> RulesController:
        return RulesController(self.app, self.app.store)

    def on_mount(self) -> None:
        follow_refreshes(self, self.show)
        self.show()

    def show(self) -> None:
        raise NotImplementedError


class GuestRulesPanel(RulesPanel):
    """Pin to the current node, choose the allowed node set, lock against automatic moves."""

    BINDINGS = [
        Binding("o", "pin_here", "Pin here/unpin", id="guest.pin_here"),
        Binding("a", "allowed_nodes", "Allowed nodes", id="guest.allowed_nodes"),
        Binding("l", "toggle_lock", "Lock/unlock", id="guest.lock"),
    ]
    WRITE_ACTIONS = frozenset({"pin_here", "allowed_nodes", "toggle_lock"})

    def __init__(self, screen):
        super().__init__(id="guest-rules")
        self.vmid: int = screen.vmid

    def show_subject(self, vmid: int) -> None:
        self.vmid = vmid
        self.show()

    def show(self) -> None:
        controller = self.controller
        cluster = controller.cluster
        snapshot = controller.snapshot
        text = Text()
        if cluster is None or snapshot is None:
            self.update(Text("waiting for cluster data…", style="dim"))
            return
        pin = controller.store.pin(cluster, self.vmid)
        lock = controller.store.lock(cluster, self.vmid)
        guest = snapshot.guest_by_vmid.get(self.vmid)
        text.append("pinned to  ", style="bold")
        if pin is None:
            text.append("- (may run anywhere)")
        else:
            text.append(visible(", ".join(sorted(pin.nodes))), style="bold magenta")
            if guest is not None and not pin.allows(guest.node):
                text.append(visible(f"  runs on {guest.node}, outside its set"), style="bold yellow")
            text.append(f"\n           since {_since(pin.created_at)} by {visible(pin.who or '?')}", style="dim")
            if pin.note:
                text.append(f"; {visible(pin.note)}", style="dim")
        text.append("\nlocked     ", style="bold")
        if lock is None:
            text.append("no")
        else:
            text.append("yes", style="bold magenta")
            text.append(
                f"  no automatic moves; since {_since(lock.created_at)} by {visible(lock.who or '?')}", style="dim"
            )
        text.append("\no pin here/unpin · a allowed nodes · l lock/unlock", style="dim")
        self.update(text)

    def action_pin_here(self) -> None:
        self.controller.pin_here_or_unpin(self.vmid)
        self.show()

    def action_toggle_lock(self) -> None:
        self.controller.toggle_lock(self.vmid)
        self.show()

    def action_allowed_nodes(self) -> None:
        controller = self.controller
        snapshot = controller.snapshot
        cluster = controller.cluster
        if snapshot is None or cluster is None:
            return
        pin = controller.store.pin(cluster, self.vmid)
        guest = snapshot.guest_by_vmid.get(self.vmid)
        selected = pin.nodes if pin is not None else frozenset({guest.node} if guest else ())
        labels = [
            (node.name, f"{node.name:<12} {node.status:<8} load {node.load * 100:3.0f}%")
            for node in sorted(snapshot.nodes, key=lambda n: n.name)
        ]

        def chosen(nodes: frozenset[str] | None) -> None:
            if nodes is not None:
                controller.set_allowed_nodes(self.vmid, nodes)
            self.show()

        self.app.push_screen(NodeSetDialog(f"Nodes guest {self.vmid} may run on", labels, selected), chosen)


class NodeRulesPanel(RulesPanel):
    """Reserve the node; its wake-on-LAN MAC, allow-power-off and boot timeout."""

    BINDINGS = [
        Binding("v", "toggle_reserved", "Reserve/release", id="node.reserve"),
        Binding("w", "power_settings", "Power settings", id="node.power_settings"),
    ]
    WRITE_ACTIONS = frozenset({"toggle_reserved", "power_settings"})

    def __init__(self, screen):
        super().__init__(id="node-rules")
        self.node: str = screen.node_name
        self.pve_mac: str | None = None  # from the node's PVE config (``wakeonlan``), once read

    def on_mount(self) -> None:  # RulesPanel.on_mount runs too (Textual calls every class's handler)
        self._read_pve_mac()

    def show_subject(self, node: str) -> None:
        self.node, self.pve_mac = node, None
        self.show()
        self._read_pve_mac()

    @work(thread=True, exclusive=True, group="node-rules-config", exit_on_error=False)
    def _read_pve_mac(self) -> None:
        node = self.node
        try:
            config = self.app.source.node_config(node)
            mac = normalise_mac(parse_wakeonlan(config.get("wakeonlan")).get("mac"))
        except Exception:  # an offline node (595) or a bad value: the stored MAC still shows
            return
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._got_pve_mac, node, mac)

    def _got_pve_mac(self, node: str, mac: str | None) -> None:
        if node == self.node:  # the pane may show another node by now
            self.pve_mac = mac
            self.show()

    def show(self) -> None:
        controller = self.controller
        cluster = controller.cluster
        if cluster is None:
            self.update(Text("waiting for cluster data…", style="dim"))
            return
        store = controller.store
        reservation = store.reservation(cluster, self.node)
        maintenance = store.node_maintenance(cluster, self.node)
        power = store.node_power(cluster, self.node)
        text = Text()
        text.append("reserved        ", style="bold")
        if reservation is None:
            text.append("no")
        else:
            text.append("yes", style="bold magenta")
            text.append(
                f"  nothing moves to or from it automatically; by {visible(reservation.who or '?')}", style="dim"
            )
        if maintenance is not None:
            text.append("\nmaintenance     ", style="bold")
            text.append(f"since {_since(maintenance.since)} {visible(maintenance.reason)}", style="bold yellow")
        text.append("\nwake-on-LAN MAC ", style="bold")
        if power.wol_mac:
            text.append(power.wol_mac)
        elif self.pve_mac:
            text.append(f"{visible(self.pve_mac)} (from the PVE node config; w to keep it)", style="dim")
        else:
            text.append("- (unknown: the power policy cannot wake it)")
        text.append("\npower-off       ", style="bold")
        text.append("allowed" if power.allow_power_off else "never")
        text.append(f"\nboot timeout    {power.boot_timeout} s")
        text.append("\nv reserve/release · w power settings", style="dim")
        self.update(text)

    def action_toggle_reserved(self) -> None:
        self.controller.toggle_reserved(self.node)
        self.show()

    def action_power_settings(self) -> None:
        controller = self.controller
        if controller.cluster is None:
            return
        power = controller.store.node_power(controller.cluster, self.node)
        if power.wol_mac:
            source = "the MAC stored in pvetop"
        elif self.pve_mac:
            source = "prefilled from the PVE node config (wakeonlan)"
        else:
            source = "no MAC known: PVE's node config has no wakeonlan entry"
        form = PowerForm(power.wol_mac or self.pve_mac, power.allow_power_off, power.boot_timeout)

        def saved(result: PowerForm | None) -> None:
            if result is not None:
                controller.save_power(
                    self.node,
                    wol_mac=result.wol_mac,
                    allow_power_off=result.allow_power_off,
                    boot_timeout=result.boot_timeout,
                )
            self.show()

        self.app.push_screen(PowerSettingsDialog(self.node, form, source), saved)
