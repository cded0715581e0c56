"""The node table and the guest table: which columns, and how one row looks.

Rows are built from small frozen "row items" (``NodeRow``, ``GuestRow``) holding everything a
row shows: an unchanged item keeps last refresh's ``Row`` object, which the table skips. The
building (``node_rows``, ``guest_rows``) is pure and runs in the poll worker, off the UI thread.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

from rich.segment import Segment
from rich.style import Style

from pvetop.model import ClusterSnapshot, Guest, Node, NodeBasics
from pvetop.policy.rules import RuleSet
from pvetop.ui import formatting as fmt
from pvetop.ui.filtering import GuestFilter
from pvetop.ui.table import ColumnSpec, LiveTable, Row, build_rows
from pvetop.ui.tags import tag_style

DIM = "dim"
MISSING = -1.0  # sort value of a figure an offline entity does not report
GUEST_STATUS_STYLES = {"running": "green", "stopped": DIM, "paused": "yellow"}
HA_NODE_STYLES = {"": "", "online": "cyan", "maintenance": "bold yellow"}  # fence, unknown, gone: red


def _load_style(fraction_value: float) -> str:
    if fraction_value >= 0.9:
        return "bold red"
    if fraction_value >= 0.7:
        return "yellow"
    return ""


@dataclass(frozen=True)
class Marks:
    """What the rows show besides the snapshot: the user's rules, the guests tagged (space) for
    a bulk move, the power policy's node states, and the node basics read per node."""

    ruleset: RuleSet = field(default_factory=RuleSet.empty)
    tagged: frozenset[int] = frozenset()
    power: Mapping[str, str] = field(default_factory=dict)  # node -> the power policy's state, when not plain on
    basics: Mapping[str, NodeBasics] = field(default_factory=dict)  # node -> its status, read apart (node_basics.py)


def guest_flags(guest: Guest, marks: Marks) -> str:
    """Markers in the flags column: * tagged, P pinned, L locked (pvetop rules), T template."""
    ruleset = marks.ruleset
    flags = "*" if guest.vmid in marks.tagged else ""
    if ruleset.pinned_to(guest.vmid) is not None:
        flags += "P"
    if ruleset.is_locked(guest.vmid):
        flags += "L"
    if guest.template:
        flags += "T"
    return flags


def node_flags(node: Node, ruleset: RuleSet) -> str:
    """Markers in the flags column: R reserved, M maintenance (pvetop rules)."""
    return ("R" if node.name in ruleset.reserved else "") + ("M" if node.name in ruleset.maintenance else "")


def _disk_text(guest: Guest) -> str:
    # VMs report no disk usage (the guest agent knows, PVE does not): show the size alone
    return fmt.used_of(guest.disk, guest.maxdisk) if guest.disk else fmt.human_size(guest.maxdisk)


@dataclass(frozen=True, slots=True)
class NodeRow:
    node: Node
    running: int
    guests: int
    flags: str
    power: str = ""  # draining, shutting down, off, waking, failed: shown instead of the status
    basics: NodeBasics | None = None  # from the node's own status, while an optional column shows it


# The power states in the 7-wide status cell (the power screen spells them out).
POWER_LABELS = {"draining": "drain", "shutting down": "shutdwn", "off": "off", "waking": "waking", "failed": "FAILED"}


@dataclass(frozen=True, slots=True)
class GuestRow:
    guest: Guest
    netin_rate: float | None  # bytes/s, None until two snapshots are known
    netout_rate: float | None
    flags: str


class NodeTable(LiveTable):
    """One row per cluster node, keyed by node name."""

    COLUMNS = (
        ColumnSpec("name", "Node", 12, grow=1),
        ColumnSpec("status", "Status", 7),
        ColumnSpec("cpu", "CPU%", 6, "right", True),
        ColumnSpec("cores", "Cores", 5, "right", True),
        ColumnSpec("mem", "Memory", 11, "right", True),
        ColumnSpec("mem_pct", "Mem%", 6, "right", True),
        ColumnSpec("disk", "Disk", 11, "right", True),
        ColumnSpec("guests", "Guests", 9, "right", True),
        ColumnSpec("uptime", "Uptime", 9, "right", True),
        ColumnSpec("hastate", "HA", 11, long_name="HA manager's node state"),
        ColumnSpec("flags", "Flags", 5),
        ColumnSpec("load", "Load", 6, "right", True, long_name="load average (1 min)"),
        ColumnSpec("iodelay", "IO%", 5, "right", True, long_name="IO delay"),
        ColumnSpec("swap", "Swap%", 6, "right", True, long_name="swap used"),
        ColumnSpec("ksm", "KSM", 8, "right", True, long_name="KSM sharing"),
        ColumnSpec("psi", "PSI cpu", 7, "right", True, long_name="CPU pressure (PSI some, %)"),
        ColumnSpec("pveversion", "PVE", 7, long_name="PVE version"),
        ColumnSpec("kernel", "Kernel", 14, long_name="kernel version"),
    )
    # From each node's own status (node_basics.py): hidden until chosen (F2), as they cost requests.
    OPTIONAL_COLUMNS: ClassVar[frozenset[str]] = frozenset(
        {"load", "iodelay", "swap", "ksm", "psi", "pveversion", "kernel"}
    )
    PSI_COLUMN = "psi"  # PSI comes from rrddata (PVE 9), a second request per node

    def __init__(self, *, sort_column: str = "name", **kwargs) -> None:
        super().__init__(sort_column=sort_column, **kwargs)


def _status_cell(node: Node, power: str) -> tuple[str, str]:
    if power:
        return POWER_LABELS.get(power, power), "bold red" if power == "failed" else "yellow" if node.online else DIM
    return node.status, "green" if node.online else "bold red"


def _basics_cells(basics: NodeBasics | None, base: str) -> tuple[tuple[str, str], ...]:
    """The optional columns' cells; ``-`` until the node's status was read, or where PVE gives nothing."""
    if basics is None:
        return (("-", DIM),) * len(NodeTable.OPTIONAL_COLUMNS)
    swap, psi = basics.swap_fraction, basics.psi("cpusome")
    return (
        (f"{basics.loadavg[0]:.2f}" if basics.loadavg else "-", base),
        (f"{basics.io_delay * 100:.1f}%" if basics.io_delay is not None else "-", base),
        (fmt.percent(swap) if swap is not None else "-", _load_style(swap or 0.0) or base),
        (fmt.human_bytes(basics.ksm_shared) if basics.ksm_shared is not None else "-", base),
        (f"{psi:.1f}" if psi is not None else "-", base),
        (basics.pve_release or "-", base),
        (basics.kernel or "-", base),
    )


def _basics_sort_values(basics: NodeBasics | None, name: str) -> tuple[tuple[object, str], ...]:
    if basics is None:
        return ((MISSING, name),) * 5 + (((), name),) * 2
    return (
        (basics.loadavg[0] if basics.loadavg else MISSING, name),
        (basics.io_delay if basics.io_delay is not None else MISSING, name),
        (basics.swap_fraction if basics.swap_fraction is not None else MISSING, name),
        (basics.ksm_shared if basics.ksm_shared is not None else MISSING, name),
        (basics.psi("cpusome") if basics.psi("cpusome") is not None else MISSING, name),
        (version_key(basics.pve_release), name),
        (version_key(basics.kernel), name),
    )


def version_key(text: str) -> tuple[object, ...]:
    """``9.1.10`` after ``9.1.9``: numbers compare as numbers."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[.\-+]", text) if part)


def render_node(item: NodeRow) -> Row:
    node = item.node
    online = node.online
    base = "" if online else DIM
    mem_fraction = node.mem_fraction
    cells = (
        (node.name, "bold" if online else DIM),
        _status_cell(node, item.power),
        (fmt.percent(node.cpu) if online else "-", _load_style(node.cpu) or base),
        (str(node.maxcpu) if node.maxcpu else "-", base),
        (fmt.used_of(node.mem, node.maxmem), base),
        (fmt.percent(mem_fraction) if node.maxmem else "-", _load_style(mem_fraction) or base),
        (fmt.used_of(node.disk, node.maxdisk), base),
        (f"{item.running}/{item.guests}", base),
        (fmt.uptime(node.uptime), base),
        (node.hastate, HA_NODE_STYLES.get(node.hastate, "bold red")),
        (item.flags, "bold magenta"),
        *_basics_cells(item.basics, base),
    )
    name = node.name
    sort_values = (
        name,
        (node.status, name),
        (node.cpu if online else MISSING, name),
        (node.maxcpu, name),
        (node.mem, name),
        (mem_fraction, name),
        (node.disk, name),
        (item.running, name),
        (node.uptime, name),
        (node.hastate, name),
        (item.flags, name),
        *_basics_sort_values(item.basics, name),
    )
    return NodeTable.make_row(item, cells, sort_values)


def node_rows(
    snapshot: ClusterSnapshot,
    ruleset: RuleSet,
    previous: dict[str, Row] | None,
    power: Mapping[str, str] | None = None,
    basics: Mapping[str, NodeBasics] | None = None,
) -> dict[str, Row]:
    by_node = snapshot.guests_by_node
    power = power or {}
    basics = basics or {}
    items = {}
    for node in snapshot.nodes:
        guests = by_node.get(node.name, ())
        running = sum(1 for guest in guests if guest.running)
        items[node.name] = NodeRow(
            node,
            running,
            len(guests),
            node_flags(node, ruleset),
            power.get(node.name, ""),
            basics.get(node.name) if node.online else None,
        )
    return build_rows(items, render_node, previous)


class GuestTable(LiveTable):
    """One row per guest, keyed by vmid (as text: DataTable row keys are strings)."""

    COLUMNS = (
        ColumnSpec("vmid", "VMID", 6, "right"),
        ColumnSpec("name", "Name", 14, grow=1),
        ColumnSpec("type", "T", 2, long_name="type"),
        ColumnSpec("node", "Node", 10),
        ColumnSpec("status", "Status", 7),
        ColumnSpec("flags", "Flg", 4, long_name="flags (tagged, pinned, locked)"),
        ColumnSpec("cpu", "CPU%", 6, "right", True),
        ColumnSpec("mem", "Memory", 11, "right", True),
        ColumnSpec("mem_pct", "Mem%", 6, "right", True, long_name="memory used of the guest's own"),
        ColumnSpec("disk", "Disk", 11, "right", True),
        ColumnSpec("netin", "Net in", 8, "right", True),
        ColumnSpec("netout", "Net out", 8, "right", True),
        ColumnSpec("uptime", "Uptime", 9, "right", True),
        ColumnSpec("lock", "Lock", 8),
        ColumnSpec("ha", "HA", 8, long_name="HA state"),
        ColumnSpec("pool", "Pool", 10),
        ColumnSpec("tags", "Tags", 20, grow=2),
    )

    OPTIONAL_COLUMNS: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, *, sort_column: str = "vmid", **kwargs) -> None:
        super().__init__(sort_column=sort_column, fixed_columns=2, **kwargs)
        self.tag_colors: dict[str, tuple[str, str]] = {}  # the datacenter's tag-style color-map
        self._tag_styles: dict[str, Style] = {}  # each tag's style, computed once per colour map

    def use_tag_colors(self, colors: tuple[tuple[str, str, str], ...]) -> None:
        mapping = {tag: (background, foreground) for tag, background, foreground in colors}
        if mapping != self.tag_colors:
            self.tag_colors = mapping
            self._tag_styles = {}
            self.redraw()

    def cell_segments(self, column: str | None, fitted: str, style: Style) -> list[Segment] | None:
        """Tags in PVE's tag colours, each on its own background (the cursor row keeps its style)."""
        if column != "tags" or not fitted.strip():
            return None
        styles = self._tag_styles
        segments = []
        for index, part in enumerate(re.split(r"( )", fitted)):
            if part and part != " " and index:
                tag = part.rstrip("…")
                if tag not in styles:
                    styles[tag] = tag_style(tag, self.tag_colors)
                segments.append(Segment(part, style + styles[tag]))
            elif part:
                segments.append(Segment(part, style))
        return segments


def render_guest(item: GuestRow) -> Row:
    guest = item.guest
    running = guest.running
    known = guest.status != "unknown"
    base = "" if running else DIM
    mem_fraction = guest.mem / guest.maxmem if guest.maxmem else 0.0
    status_style = GUEST_STATUS_STYLES.get(guest.status, "dim italic")
    cells = (
        (str(guest.vmid), base),
        (guest.name or "-", "bold" if running else base),
        ("vm" if guest.type == "qemu" else "ct", base),
        (guest.node, base),
        (guest.status, status_style),
        (item.flags, "bold magenta"),
        (fmt.percent(guest.cpu) if running else "-", _load_style(guest.cpu) or base),
        (fmt.used_of(guest.mem, guest.maxmem) if known else "-", _load_style(mem_fraction) or base),
        (fmt.percent(mem_fraction) if known and guest.maxmem else "-", _load_style(mem_fraction) or base),
        (_disk_text(guest) if known else "-", base),
        (fmt.human_rate(item.netin_rate) if running else "-", base),
        (fmt.human_rate(item.netout_rate) if running else "-", base),
        (fmt.uptime(guest.uptime), base),
        (guest.lock or "", "bold yellow"),
        (guest.hastate or "", "cyan"),
        (guest.pool or "", ""),
        (" ".join(guest.tags), ""),
    )
    sort_values = (
        guest.vmid,
        (guest.name.lower(), guest.vmid),
        (guest.type, guest.vmid),
        (guest.node, guest.vmid),
        (guest.status, guest.vmid),
        (item.flags, guest.vmid),
        (guest.cpu if running else MISSING, guest.vmid),
        (guest.mem if known else MISSING, guest.vmid),
        (mem_fraction if known else MISSING, guest.vmid),
        (guest.disk if known else MISSING, guest.vmid),
        (item.netin_rate if item.netin_rate is not None and running else MISSING, guest.vmid),
        (item.netout_rate if item.netout_rate is not None and running else MISSING, guest.vmid),
        (guest.uptime, guest.vmid),
        (guest.lock or "", guest.vmid),
        (guest.hastate or "", guest.vmid),
        (guest.pool or "", guest.vmid),
        (";".join(guest.tags), guest.vmid),
    )
    return GuestTable.make_row(item, cells, sort_values)


def guest_rows(
    snapshot: ClusterSnapshot, rates: dict[int, tuple[float, float]], marks: Marks, previous: dict[str, Row] | None
) -> dict[str, Row]:
    """A row for every guest, keyed by vmid as text (DataTable row keys are strings)."""
    items = {}
    no_rates = (None, None)
    for guest in snapshot.guests:
        netin, netout = rates.get(guest.vmid, no_rates)
        items[str(guest.vmid)] = GuestRow(guest, netin, netout, guest_flags(guest, marks))
    return build_rows(items, render_guest, previous)


def select_guests(rows: dict[str, Row], query: GuestFilter, node: str | None) -> dict[str, Row]:
    """The rows to show: guests matching the filter (and on the selected node, if any)."""
    if not query.active and node is None:
        return rows
    return {
        key: row
        for key, row in rows.items()
        if (node is None or row.item.guest.node == node) and (not query.active or query.matches(row.item.guest))
    }
