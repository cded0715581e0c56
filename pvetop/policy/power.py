"""The power policy: which node to switch off and when, which to wake and when — pure.

The binding resource of the powered nodes (the larger of their CPU share and memory share,
summed over every online node) is kept within a band (default 45–81 %). A node is switched off
only after the share stayed below the band for a window (40 min) and the rest can carry its
guests under the band's top; a node is woken after the share stayed above the band for 5 min.
Windows are judged from the nodes' rrd history, so a fresh start decides at once.

Safety comes before energy: never fewer than a majority of corosync votes (a QDevice counted
when present), and a *failure margin* of nodes that may still fail afterwards (default 1; 0 only
by an operator's explicit choice — with HA active, a partition that loses quorum self-fences).
A node also stays on when it holds a locked guest, a pinned guest with nowhere else to go, a
guest that cannot migrate (unless marked to sleep with its node), when HA guests would not fit
after the largest remaining node fails, when nothing is known that can wake it, when it is the
node pvetop talks to and no other endpoint answers, after 2 cycles in a day, outside the
configured time windows, or when the minimum of powered nodes would be crossed.

Everything here is plain data in, plain data out: time, history and the facts the engine
gathered (MACs, endpoints, preconditions) are arguments. Every decision carries its reasons.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cached_property
from types import MappingProxyType
from typing import Any, Literal

from pvetop.errors import UsageError
from pvetop.model import ClusterSnapshot, Guest, LocalVolumes, MigratePrecondition, fraction
from pvetop.policy.placement import EvacuationPlan, plan_evacuation
from pvetop.policy.projection import ProjectedCluster
from pvetop.policy.rules import RuleSet
from pvetop.policy.settings import SettingSpec, boolean, choice, number

Action = Literal["keep", "power_off", "wake"]
PowerState = Literal["on", "draining", "shutting down", "off", "waking", "failed"]
POWER_STATES: tuple[str, ...] = ("on", "draining", "shutting down", "off", "waking", "failed")
DAY = 86400.0
NODE_MEM_ALARM = 0.9  # a node this full wakes a sleeping one at once, whatever the windows say

# ---------------------------------------------------------------------------------------------
# settings


def _windows(text: str) -> tuple[tuple[int, int], ...]:
    """``"23:00-07:00,12:00-13:30"`` -> minutes of the day; empty text means "any time"."""
    windows = []
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        match = re.fullmatch(r"(\d{1,2}):(\d\d)\s*-\s*(\d{1,2}):(\d\d)", part)
        if not match:
            raise ValueError(f"window {part!r} is not HH:MM-HH:MM")
        h1, m1, h2, m2 = (int(g) for g in match.groups())
        if h1 > 23 or h2 > 24 or m1 > 59 or m2 > 59 or (h2 == 24 and m2):
            raise ValueError(f"window {part!r} has an impossible time")
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if start == end:
            raise ValueError(f"window {part!r} is empty")
        windows.append((start, end))
    return tuple(windows)


def _windows_text(text: str) -> str:
    return ",".join(f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}" for s, e in _windows(text))


def _watts(text: str) -> dict[str, float]:
    """``"150"`` (every node) or ``"pve-big=150,*=15"`` -> {node or "*": watts}."""
    watts: dict[str, float] = {}
    for part in (p.strip() for p in str(text).split(",")):
        if not part:
            continue
        name, sep, value = part.rpartition("=")
        name = name.strip() if sep else "*"
        try:
            figure = float(value)
        except ValueError:
            raise ValueError(f"{part!r}: watts must be a number") from None
        if not 0 <= figure <= 100_000:
            raise ValueError(f"{part!r}: watts must be between 0 and 100000")
        watts[name or "*"] = figure
    if not watts:
        raise ValueError("give watts, e.g. 100 or pve-big=150,*=15")
    return watts


def _watts_text(text: str) -> str:
    return ",".join(f"{name}={watts:g}" for name, watts in _watts(text).items())


FAILURE_MARGIN_RISK = (
    "with failure margin 0 one more node failure loses quorum: the cluster stops accepting changes, "
    "and where HA is active the surviving nodes self-fence (reset) within about a minute"
)

POWER_SETTINGS: tuple[SettingSpec, ...] = (
    SettingSpec(
        "power.mode",
        "off",
        "off: nothing; advise: show what it would do; auto: act",
        choice("off", "advise", "auto"),
        ("off", "advise", "auto"),
    ),
    SettingSpec(
        "power.band_low",
        45,
        "percent: below this binding share the powered nodes are too many",
        number(1, 99, integer=True),
    ),
    SettingSpec(
        "power.band_high",
        81,
        "percent: above this binding share a sleeping node is woken",
        number(2, 100, integer=True),
    ),
    SettingSpec(
        "power.below_minutes", 40, "minutes below the band before a node is switched off", number(0, 1440, integer=True)
    ),
    SettingSpec(
        "power.above_minutes", 5, "minutes above the band before a node is woken", number(0, 1440, integer=True)
    ),
    SettingSpec(
        "power.failure_margin",
        1,
        "nodes that may still fail after a power-off without losing quorum (0 only by explicit choice)",
        number(0, 16, integer=True),
        confirm=lambda margin: FAILURE_MARGIN_RISK if margin == 0 else None,
    ),
    SettingSpec("power.max_cycles_per_day", 2, "power-offs per node in any 24 hours", number(0, 48, integer=True)),
    SettingSpec(
        "power.windows", "", "when nodes may sleep, HH:MM-HH:MM[,…] local time (empty: any time)", _windows_text
    ),
    SettingSpec("power.min_nodes_on", 1, "never fewer powered nodes than this", number(1, 1000, integer=True)),
    SettingSpec("power.idle_watts", "*=100", "watts a node draws idle: 100, or pve-big=150,*=15", _watts_text),
    SettingSpec(
        "power.wake_method",
        "auto",
        "auto: magic packet when pvetop knows the MAC, else PVE's wakeonlan; packet; pve",
        choice("auto", "packet", "pve"),
        ("auto", "packet", "pve"),
    ),
    SettingSpec("power.wol_host", "255.255.255.255", "where pvetop sends magic packets (broadcast address)", str.strip),
    SettingSpec("power.wol_port", 9, "UDP port of the magic packets", number(1, 65535, integer=True)),
    SettingSpec(
        "power.drain_local_disks",
        True,
        "a drain copies local disks to a local storage of the target that has room (PVE's targetstorage)",
        boolean,
    ),
    SettingSpec(
        "power.return_guests",
        True,
        "after a wake, the guests the drain moved off the node go back (copied disks to their storage)",
        boolean,
    ),
    SettingSpec(
        "power.interval", 60, "seconds between two evaluations of the power worker", number(5, 3600, integer=True)
    ),
)


@dataclass(frozen=True)
class PowerSettings:
    """The ``power.*`` settings as one checked value (the band as fractions, windows in seconds)."""

    mode: str = "off"
    band_low: float = 0.45
    band_high: float = 0.81
    below_window: float = 40 * 60.0
    above_window: float = 5 * 60.0
    failure_margin: int = 1
    max_cycles_per_day: int = 2
    windows: tuple[tuple[int, int], ...] = ()
    min_nodes_on: int = 1
    idle_watts: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({"*": 100.0}))
    wake_method: str = "auto"
    wol_host: str = "255.255.255.255"
    wol_port: int = 9
    interval: float = 60.0
    drain_local_disks: bool = True
    return_guests: bool = True
    margin_chosen_at: float | None = None  # when the operator chose the margin in force (journal)

    def __post_init__(self) -> None:
        if not 0 < self.band_low < self.band_high <= 1:
            raise UsageError(
                f"power band {self.band_low:.0%}–{self.band_high:.0%}: the low end must be below the high end"
            )

    @classmethod
    def from_values(cls, values: Mapping[str, Any], *, margin_chosen_at: float | None = None) -> PowerSettings:
        """From the effective settings (every ``power.*`` key, defaults filled in)."""
        defaults = {spec.key: spec.default for spec in POWER_SETTINGS}
        v = {**defaults, **{k: val for k, val in values.items() if k in defaults}}
        return cls(
            mode=v["power.mode"],
            band_low=v["power.band_low"] / 100,
            band_high=v["power.band_high"] / 100,
            below_window=v["power.below_minutes"] * 60.0,
            above_window=v["power.above_minutes"] * 60.0,
            failure_margin=int(v["power.failure_margin"]),
            max_cycles_per_day=int(v["power.max_cycles_per_day"]),
            windows=_windows(v["power.windows"]),
            min_nodes_on=int(v["power.min_nodes_on"]),
            idle_watts=MappingProxyType(_watts(v["power.idle_watts"])),
            wake_method=v["power.wake_method"],
            wol_host=v["power.wol_host"],
            wol_port=int(v["power.wol_port"]),
            interval=float(v["power.interval"]),
            drain_local_disks=bool(v["power.drain_local_disks"]),
            return_guests=bool(v["power.return_guests"]),
            margin_chosen_at=margin_chosen_at,
        )

    def watts(self, node: str) -> float:
        return self.idle_watts.get(node, self.idle_watts.get("*", 0.0))

    def in_window(self, minute_of_day: int) -> bool:
        """True when nodes may sleep now (no windows configured: always)."""
        if not self.windows:
            return True
        for start, end in self.windows:
            inside = start <= minute_of_day < end if start < end else (minute_of_day >= start or minute_of_day < end)
            if inside:
                return True
        return False

    @property
    def idle_watts_text(self) -> str:
        return ",".join(f"{name}={watts:g}" for name, watts in self.idle_watts.items())

    @property
    def windows_text(self) -> str:
        return ",".join(f"{s // 60:02d}:{s % 60:02d}-{e // 60:02d}:{e % 60:02d}" for s, e in self.windows)


# ---------------------------------------------------------------------------------------------
# quorum


def qdevice_votes(status: Mapping[str, Any], nodes: int) -> int:
    """Votes a QDevice adds, from ``GET /cluster/config/qdevice`` (empty when there is none).

    corosync-qdevice's ``ffsplit`` algorithm gives 1 vote, ``lms`` gives (nodes − 1); a QDevice
    that is not connected to its QNetd server gives none.
    """
    if not status:
        return 0
    state = str(status.get("State", "")).lower()
    if state and state != "connected":
        return 0
    algorithm = str(status.get("Algorithm", "")).lower()
    if "lms" in algorithm or "last man" in algorithm:
        return max(1, nodes - 1)
    return 1


@dataclass(frozen=True, slots=True)
class Quorum:
    """Corosync's arithmetic: a majority of every configured vote (QDevice included) is needed."""

    votes_total: int
    votes_online: int
    qdevice: int = 0

    @property
    def votes_needed(self) -> int:
        return self.votes_total // 2 + 1

    @property
    def quorate(self) -> bool:
        return self.votes_online >= self.votes_needed


def quorum_of(node_votes: Mapping[str, int], online: Iterable[str], qdevice: int = 0) -> Quorum:
    online = set(online)
    total = sum(node_votes.values()) + qdevice
    return Quorum(total, sum(v for n, v in node_votes.items() if n in online) + qdevice, qdevice)


def failure_margin(node_votes: Mapping[str, int], online: Iterable[str], qdevice: int = 0) -> int:
    """How many of the online nodes may still fail (worst case: the ones with most votes) with
    quorum kept; −1 when quorum is already lost."""
    quorum = quorum_of(node_votes, online, qdevice)
    if not quorum.quorate:
        return -1
    left = quorum.votes_online
    margin = 0
    for votes in sorted((node_votes[n] for n in online if n in node_votes), reverse=True):
        if left - votes < quorum.votes_needed:
            break
        left -= votes
        margin += 1
    return margin


def max_nodes_off(nodes: int, margin: int, qdevice: int = 0) -> int:
    """With one vote per node: how many may sleep keeping ``margin`` failures in hand."""
    needed = (nodes + qdevice) // 2 + 1
    return max(0, nodes + qdevice - needed - margin) if nodes + qdevice >= needed else 0


# ---------------------------------------------------------------------------------------------
# inputs


@dataclass(frozen=True, slots=True)
class LoadSample:
    """One node's use at one instant (an rrddata row, or the current snapshot)."""

    time: float
    cpu_cores: float
    maxcpu: float
    mem: float
    maxmem: float


def samples_from_rrd(rows: Iterable[Mapping[str, Any]]) -> tuple[LoadSample, ...]:
    """``GET /nodes/{n}/rrddata`` rows -> samples; rows of an offline node carry only ``time``."""
    samples = []
    for row in rows:
        try:
            cpu, maxcpu = float(row["cpu"]), float(row["maxcpu"])
            mem, maxmem = float(row["memused"]), float(row["memtotal"])
            at = float(row["time"])
        except (KeyError, TypeError, ValueError):
            continue
        if maxcpu > 0 and maxmem > 0:
            samples.append(LoadSample(at, cpu * maxcpu, maxcpu, mem, maxmem))
    return tuple(sorted(samples, key=lambda s: s.time))


@dataclass(frozen=True, slots=True)
class NodeFacts:
    """What the engine knows about one node beyond the snapshot."""

    allow_power_off: bool = False
    store_mac: str | None = None  # the MAC the operator gave pvetop
    pve_mac: str | None = None  # the MAC in the node's own PVE config (``wakeonlan``)
    boot_timeout: int = 300
    state: PowerState | None = None  # the engine's own state; None: read it from the snapshot
    power_offs: tuple[float, ...] = ()  # when it was switched off (for the daily cycle cap)
    woken_at: float | None = None  # when it last rejoined after a wake
    off_failed_at: float | None = None  # when its last power-off failed (the drain did not empty it)


@dataclass(frozen=True)
class PowerInputs:
    snapshot: ClusterSnapshot
    now: float
    minute_of_day: int  # local time, for the windows
    settings: PowerSettings = field(default_factory=PowerSettings)
    rules: RuleSet = field(default_factory=RuleSet)
    facts: Mapping[str, NodeFacts] = field(default_factory=dict)
    history: Mapping[str, Sequence[LoadSample]] = field(default_factory=dict)
    qdevice: int = 0
    api_node: str | None = None  # the node whose API endpoint pvetop talks to
    other_endpoint_answers: bool = False  # another configured endpoint answered just now
    sleepers: Mapping[int, str] = field(default_factory=dict)  # vmid -> name: sleeps with its node
    preconditions: Mapping[int, MigratePrecondition] = field(default_factory=dict)
    local_volumes: Mapping[int, LocalVolumes] = field(default_factory=dict)  # vmid -> its volumes only its node has

    def fact(self, node: str) -> NodeFacts:
        return self.facts.get(node) or NodeFacts()

    def sleeps_with_node(self, guest: Guest) -> bool:
        """Marked to sleep with its node, and still the guest that was marked (a reused vmid is not)."""
        name = self.sleepers.get(guest.vmid)
        return name is not None and (not name or name == guest.name)


# ---------------------------------------------------------------------------------------------
# output


@dataclass(frozen=True, slots=True)
class WakeMethod:
    kind: Literal["packet", "pve"]
    mac: str | None = None
    via: str | None = None  # PVE's wakeonlan: the online node that sends the packet

    def describe(self) -> str:
        if self.kind == "packet":
            return f"magic packet to {self.mac}"
        return f"PVE's wakeonlan through {self.via}"


@dataclass(frozen=True)
class NodeDecision:
    node: str
    state: str
    action: Action
    reasons: tuple[str, ...]
    refusals: tuple[str, ...] = ()  # why a power-off (or wake) is not allowed; empty: allowed
    drain: EvacuationPlan | None = None
    sleepers: tuple[int, ...] = ()  # guests shut down with the node
    wake: WakeMethod | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"node": self.node, "state": self.state, "action": self.action, "reasons": list(self.reasons)}

    def summary(self) -> str:
        return f"{self.node}: " + "; ".join(self.reasons)


@dataclass(frozen=True)
class PowerPlan:
    quorum: Quorum
    failure_margin: int  # the margin in force now (with the nodes that are online)
    required_margin: int
    share: float  # binding share of the powered nodes now
    below_for: float  # seconds the share has been below the band
    above_for: float
    decisions: tuple[NodeDecision, ...]
    paused: str | None = None  # why nothing may happen now (stale data, lost quorum)

    @property
    def action(self) -> NodeDecision | None:
        """The one change the plan asks for, if any."""
        return next((d for d in self.decisions if d.action != "keep"), None)

    def decision(self, node: str) -> NodeDecision:
        for item in self.decisions:
            if item.node == node:
                return item
        raise UsageError(f"no node {node!r} in the power plan (nodes: {', '.join(d.node for d in self.decisions)})")

    def as_dict(self) -> dict[str, Any]:
        return {
            "quorum": {
                "votes_total": self.quorum.votes_total,
                "votes_needed": self.quorum.votes_needed,
                "failure_margin": self.failure_margin,
            },
            "nodes": [decision.as_dict() for decision in self.decisions],
        }


# ---------------------------------------------------------------------------------------------
# figures


def _pct(value: float) -> str:
    return f"{value * 100:.0f} %"


def _minutes(seconds: float) -> str:
    return f"{seconds / 60:.0f} min"


def binding_share(samples: Iterable[LoadSample]) -> float:
    """max(CPU share, memory share) of the nodes summed together."""
    samples = list(samples)
    cpu = fraction(sum(s.cpu_cores for s in samples), sum(s.maxcpu for s in samples))
    mem = fraction(sum(s.mem for s in samples), sum(s.maxmem for s in samples))
    return max(cpu, mem)


def current_samples(snapshot: ClusterSnapshot, now: float) -> list[LoadSample]:
    return [
        LoadSample(now, n.cpu * n.maxcpu, n.maxcpu, n.mem, n.maxmem)
        for n in snapshot.nodes
        if n.online and n.maxmem and n.maxcpu
    ]


def share_series(inputs: PowerInputs) -> list[tuple[float, float]]:
    """(time, binding share of the nodes that were up then), oldest first, ending with now."""
    by_time: dict[float, list[LoadSample]] = {}
    for samples in inputs.history.values():
        for sample in samples:
            if sample.time < inputs.now:
                by_time.setdefault(sample.time, []).append(sample)
    series = [(t, binding_share(samples)) for t, samples in sorted(by_time.items())]
    series.append((inputs.now, binding_share(current_samples(inputs.snapshot, inputs.now))))
    return series


def time_outside(series: Sequence[tuple[float, float]], now: float, outside: Callable[[float], bool]) -> float:
    """Seconds the share has been outside the band (``outside(share)``), up to now; 0 when not."""
    since = None
    for at, share in reversed(series):
        if not outside(share):
            break
        since = at
    return 0.0 if since is None else max(0.0, now - since)


# ---------------------------------------------------------------------------------------------
# the plan


class _Evaluation:
    """One evaluation: the inputs indexed once, asked per node."""

    def __init__(self, inputs: PowerInputs) -> None:
        self.inputs = inputs
        self.settings = inputs.settings
        snapshot = inputs.snapshot
        self.snapshot = snapshot
        self.votes = {n.name: n.votes for n in snapshot.nodes}
        self.states = {n.name: self._state(n.name) for n in snapshot.nodes}
        self.powered = [n.name for n in snapshot.nodes if n.online and self.states[n.name] == "on"]
        self.online = [n.name for n in snapshot.nodes if n.online]
        series = share_series(inputs)
        self.share = series[-1][1]
        low, high = self.settings.band_low, self.settings.band_high
        self.below_for = time_outside(series, inputs.now, lambda s: s < low)
        self.above_for = time_outside(series, inputs.now, lambda s: s > high)
        self.quorum = quorum_of(self.votes, self.online, inputs.qdevice)
        self.margin = failure_margin(self.votes, self.online, inputs.qdevice)

    def _state(self, name: str) -> str:
        fact = self.inputs.fact(name).state
        if fact is not None:
            return fact
        return "on" if self.snapshot.node_by_name[name].online else "off"

    # --- wake ----------------------------------------------------------------------------------

    def wake_method(self, name: str) -> WakeMethod | None:
        """How this node can be woken, per ``power.wake_method``; None when nothing is known."""
        fact = self.inputs.fact(name)
        mac = fact.store_mac or fact.pve_mac
        via = next((n for n in self.online if n != name), None)
        packet = WakeMethod("packet", mac=mac) if mac else None
        pve = WakeMethod("pve", mac=fact.pve_mac, via=via) if fact.pve_mac and via else None
        method = self.settings.wake_method
        if method == "packet":
            return packet
        if method == "pve":
            return pve
        return WakeMethod("packet", mac=fact.store_mac) if fact.store_mac else (pve or packet)

    def _why_no_wake(self, name: str) -> str:
        fact = self.inputs.fact(name)
        if self.settings.wake_method == "pve" and fact.pve_mac:
            return "no other online node to send PVE's wakeonlan"
        return "no known way to wake it (set its MAC in the node pane, or `wakeonlan: mac=…` in its PVE node config)"

    # --- power-off checks ---------------------------------------------------------------------

    def power_off_checks(self, name: str, *, manual: bool) -> tuple[list[str], list[str], NodeDecision | None]:
        """(reasons for, refusals, decision stub with drain) of switching ``name`` off now.

        ``manual``: the operator asks; the policy's own limits (allow flag, band, windows, cycle
        cap) are shown but do not refuse — safety checks (quorum, HA, locks, pins, guests that
        cannot move, a way back, the API endpoint) always do.
        """
        s, inputs, snapshot = self.settings, self.inputs, self.snapshot
        fact = inputs.fact(name)
        node = snapshot.node_by_name[name]
        reasons: list[str] = []
        refusals: list[str] = []
        soft: list[str] = []  # policy limits: refusals for the policy, notes for a user

        if not node.online or self.states[name] != "on":
            refusals.append(f"it is {self.states[name]}")
        if not fact.allow_power_off:
            soft.append("power-off is not allowed for this node (allow it in the node pane)")
        wake = self.wake_method(name)
        if wake is None:
            refusals.append(self._why_no_wake(name))
        if inputs.api_node == name and not inputs.other_endpoint_answers:
            refusals.append("pvetop talks to the cluster through this node and no other configured endpoint answers")
        recent = [t for t in fact.power_offs if inputs.now - t < DAY]
        if len(recent) >= s.max_cycles_per_day:
            soft.append(f"already switched off {len(recent)} times in 24 h (limit {s.max_cycles_per_day})")
        if fact.woken_at is not None and inputs.now - fact.woken_at < s.below_window:
            # The history before the wake was judged with the node off: it says nothing about now.
            soft.append(
                f"woken {_minutes(inputs.now - fact.woken_at)} ago; judged again after {_minutes(s.below_window)} on"
            )
        if fact.off_failed_at is not None and inputs.now - fact.off_failed_at < s.below_window:
            # What stopped it (a guest moved back, a refused move) is likely still there: one try
            # per window, not one per evaluation.
            soft.append(
                f"its power-off failed {_minutes(inputs.now - fact.off_failed_at)} ago; "
                f"tried again after {_minutes(s.below_window)}"
            )
        failed_elsewhere = [
            (at, other)
            for other in snapshot.node_by_name
            if other != name
            and (at := inputs.fact(other).off_failed_at) is not None
            and inputs.now - at < s.below_window
        ]
        if failed_elsewhere:
            # A drain that failed (migrations failing, a guest the HA manager moved back) says the
            # cluster is not ready for one: draining the next node would churn its guests as well.
            at, other = max(failed_elsewhere)
            soft.append(
                f"the power-off of {other} failed {_minutes(inputs.now - at)} ago; "
                f"no node is switched off until {_minutes(s.below_window)} after it"
            )
        if not s.in_window(inputs.minute_of_day):
            soft.append(f"outside the power-off windows ({s.windows_text})")
        after_on = [n for n in self.powered if n != name]
        if len(after_on) < s.min_nodes_on:
            refusals.append(f"would leave {len(after_on)} nodes on (minimum {s.min_nodes_on})")

        after_online = [n for n in self.online if n != name]
        quorum = quorum_of(self.votes, after_online, inputs.qdevice)
        margin = failure_margin(self.votes, after_online, inputs.qdevice)
        chosen = ""
        if s.margin_chosen_at is not None and s.failure_margin < 1:
            chosen = f" (chosen {datetime.fromtimestamp(s.margin_chosen_at, UTC).strftime('%Y-%m-%d %H:%M')} UTC)"
        votes_text = f"after power-off {quorum.votes_online} of {quorum.votes_total} votes"
        if inputs.qdevice:
            votes_text += f" (QDevice {inputs.qdevice})"
        if not quorum.quorate:
            refusals.append(f"{votes_text}: below the {quorum.votes_needed} needed for quorum")
        elif margin < s.failure_margin:
            how = (
                "; choose margin 0 (power screen F, or `pvetop settings set power.failure_margin 0`) "
                "if you accept that " + FAILURE_MARGIN_RISK
                if margin == 0
                else ""
            )
            refusals.append(f"{votes_text}, failure margin {margin} below the required {s.failure_margin}{how}")
        else:
            reasons.append(f"{votes_text}, failure margin {margin}{chosen if margin == 0 else ''}")

        if self.below_for >= s.below_window:
            reasons.insert(0, f"below band for {_minutes(self.below_for)} (max share {_pct(self.share)})")
        elif self.share < s.band_low:
            soft.insert(
                0,
                f"below band for {_minutes(self.below_for)} of {_minutes(s.below_window)} "
                f"(max share {_pct(self.share)})",
            )
        else:
            soft.insert(0, f"max share {_pct(self.share)} is not below the {_pct(s.band_low)} band")

        if not manual and (refusals or soft):
            # Already refused: the drain plan (the costly part) would change nothing.
            stub = NodeDecision(name, self.states[name], "keep", (), wake=wake)
            return reasons, soft + refusals, stub

        guests = snapshot.guests_by_node.get(name, ())
        sleepers = tuple(g.vmid for g in guests if g.running and inputs.sleeps_with_node(g))
        for guest in guests:
            if guest.vmid in sleepers:
                continue
            if inputs.rules.is_locked(guest.vmid):
                refusals.append(f"holds guest {guest.vmid} ({guest.name}), locked against automatic moves")
            elif guest.lock and guest.running:
                refusals.append(f"guest {guest.vmid} ({guest.name}) is locked by Proxmox VE ({guest.lock})")
            pinned = inputs.rules.pinned_to(guest.vmid)
            if pinned is not None and guest.running and not (set(pinned) & set(after_on)):
                refusals.append(
                    f"guest {guest.vmid} ({guest.name}) is pinned to {', '.join(sorted(pinned))} "
                    "and no other powered node is in its set"
                )

        drain = self._drain(name, sleepers)
        for unplaced in drain.unplaceable:
            if not any(f"guest {unplaced.vmid} " in r for r in refusals):
                refusals.append(
                    f"guest {unplaced.vmid} ({unplaced.name}) cannot move: {unplaced.reason} "
                    "— or mark it to sleep with its node"
                )
        if drain.complete or not drain.unplaceable:
            moved = len(drain.moves)
            text = f"drain: {moved} move{'s' if moved != 1 else ''}"
            if sleepers:
                text += f"; sleeping with the node: {', '.join(str(v) for v in sleepers)}"
            reasons.append(text)

        share_after = self._share_after(drain.projection, name)
        peak_after = self._peak_share_after(name, sleepers)
        if share_after > s.band_high:
            refusals.append(f"the rest would carry {_pct(share_after)}, above the {_pct(s.band_high)} band")
        elif peak_after > s.band_high:
            refusals.append(
                f"the rest would have carried up to {_pct(peak_after)} in the last {_minutes(s.below_window)}, "
                f"above the {_pct(s.band_high)} band"
            )

        ha_problem = self._ha_after_failure(drain.projection, after_on)
        if ha_problem:
            refusals.append(f"HA guests fit: no — {ha_problem}")
        else:
            reasons.append("HA guests fit: yes")

        if manual:
            reasons += [f"note: {text}" for text in soft]
        else:
            refusals = soft + refusals
        stub = NodeDecision(name, self.states[name], "keep", (), drain=drain, sleepers=sleepers, wake=wake)
        return reasons, refusals, stub

    def _drain(self, name: str, sleepers: tuple[int, ...]) -> EvacuationPlan:
        """The automatic evacuation of the guests that must keep running, under the band's top."""
        keep = frozenset(sleepers)
        # Each guest weighs what its host pays for it (a VM's page cache stays resident), so the
        # nodes that take the drained guests are not fuller than the plan said.
        guests = tuple(
            replace(g, mem=g.host_mem)
            for g in self.snapshot.guests
            if g.node != name or (g.running and g.vmid not in keep and not g.template)
        )
        # Nodes on their way down (or not yet back) take nothing: the plan sees them offline.
        nodes = tuple(
            replace(n, status="offline") if n.name != name and self.states[n.name] != "on" else n
            for n in self.snapshot.nodes
        )
        drained = replace(self.snapshot, nodes=nodes, guests=guests)
        return plan_evacuation(
            drained,
            name,
            self.inputs.rules,
            mode="auto",
            now=self.inputs.now,
            mem_ceiling=self.settings.band_high,
            preconditions=self.inputs.preconditions,
            local_volumes=self.inputs.local_volumes,
            copy_local_disks=self.settings.drain_local_disks,
        )

    def _peak_share_after(self, name: str, sleepers: tuple[int, ...]) -> float:
        """The highest share the other powered nodes would have carried over the last window, had
        they held the whole load (less the guests that sleep, at their current use): the hysteresis
        that keeps a node woken by a peak from being switched off between two peaks."""
        rest = [self.snapshot.node_by_name[n] for n in self.powered if n != name]
        cap_cpu, cap_mem = sum(n.maxcpu for n in rest), sum(n.maxmem for n in rest)
        if not cap_cpu or not cap_mem:
            return 0.0
        # Node history does not say which guest was busy: a sleeper may have caused the node's own
        # CPU up to its cores; memory barely moves, so its current use stands for the window.
        asleep = [self.snapshot.guest_by_vmid[vmid] for vmid in sleepers]
        sleep_cores, sleep_mem = sum(g.maxcpu for g in asleep), sum(g.host_mem for g in asleep)
        # The node's own memory (host, page cache) goes away with it; only its guests' moves.
        node = self.snapshot.node_by_name[name]
        guests_mem = sum(g.host_mem for g in self.snapshot.guests_by_node.get(name, ()) if g.running)
        sleep_mem += max(0, node.mem - guests_mem)
        totals, by_node = self._window
        own = by_node.get(name, {})
        peak = 0.0
        for at, (total_cpu, total_mem) in totals.items():
            mine = own.get(at)
            sleeping_cpu = min(sleep_cores, mine.cpu_cores) if mine else 0.0
            cpu = max(0.0, total_cpu - sleeping_cpu) / cap_cpu
            mem = max(0.0, total_mem - sleep_mem) / cap_mem
            peak = max(peak, cpu, mem)
        return peak

    @cached_property
    def _window(self) -> tuple[dict[float, tuple[float, float]], dict[str, dict[float, LoadSample]]]:
        """The below-window's history indexed once per evaluation (it is asked for every node):
        the whole cluster's CPU cores and memory at each sample time, and each node's sample."""
        start = self.inputs.now - self.settings.below_window
        totals: dict[float, tuple[float, float]] = {}
        by_node: dict[str, dict[float, LoadSample]] = {}
        for member, samples in self.inputs.history.items():
            own = by_node.setdefault(member, {})
            for sample in samples:
                if start <= sample.time < self.inputs.now:
                    cpu, mem = totals.get(sample.time, (0.0, 0.0))
                    totals[sample.time] = (cpu + sample.cpu_cores, mem + sample.mem)
                    own[sample.time] = sample
        return totals, by_node

    def _share_after(self, projection: ProjectedCluster, name: str) -> float:
        rest = [u for n, u in projection.usage.items() if n != name and n in self.powered]
        samples = [LoadSample(self.inputs.now, u.cpu_cores, u.maxcpu, u.mem, u.maxmem) for u in rest]
        return binding_share(samples)

    def _ha_after_failure(self, projection: ProjectedCluster, after_on: list[str]) -> str | None:
        """None when the HA guests of the largest remaining node fit on the others, else why not."""
        if len(after_on) < 1:
            return "no node left"
        largest = max(after_on, key=lambda n: (projection.usage_of(n).maxmem, n))
        placed = [  # the drained cluster's guests: those that sleep with the node are not in it
            g
            for g in projection.snapshot.guests
            if g.ha_managed and g.running and projection.node_of(g.vmid) == largest
        ]
        if not placed:
            return None
        free = {n: projection.usage_of(n).free_mem for n in after_on if n != largest}
        for guest in sorted(placed, key=lambda g: (-g.host_mem, g.vmid)):  # first fit, largest first
            target = next((n for n in sorted(free, key=lambda n: -free[n]) if free[n] >= guest.host_mem), None)
            if target is None:
                return f"if {largest} failed, HA guest {guest.vmid} ({guest.name}) would find no node with room"
            free[target] -= guest.host_mem
        return None

    # --- wake checks --------------------------------------------------------------------------

    def wake_checks(self, name: str, *, manual: bool) -> tuple[list[str], list[str], WakeMethod | None]:
        s = self.settings
        reasons: list[str] = []
        refusals: list[str] = []
        state = self.states[name]
        if state not in ("off", "failed") or self.snapshot.node_by_name[name].online:
            refusals.append(f"it is {state}")
        method = self.wake_method(name)
        if method is None:
            refusals.append(self._why_no_wake(name))
        if not manual and state == "failed":
            refusals.append("it did not come back after the last wake: wake it by hand once it is fixed")
        if manual:
            return reasons, refusals, method
        triggers = []
        if self.above_for >= s.above_window and self.share > s.band_high:
            triggers.append(f"above band for {_minutes(self.above_for)} (max share {_pct(self.share)})")
        hot = [n for n in self.snapshot.online_nodes if n.mem_fraction > NODE_MEM_ALARM]
        if hot:
            triggers.append(f"{hot[0].name} memory at {_pct(hot[0].mem_fraction)}")
        if self.margin < s.failure_margin:
            triggers.append(f"failure margin {self.margin} below the required {s.failure_margin}")
        if len(self.powered) < s.min_nodes_on:
            triggers.append(f"{len(self.powered)} nodes on, minimum {s.min_nodes_on}")
        if not s.in_window(self.inputs.minute_of_day):
            triggers.append(f"outside the power-off windows ({s.windows_text})")
        if not triggers:
            refusals.append(
                f"no need: max share {_pct(self.share)}"
                + (f", above band for {_minutes(self.above_for)}" if self.share > s.band_high else "")
            )
        reasons += triggers
        if method is not None:
            reasons.append(f"wake by {method.describe()}")
        return reasons, refusals, method


def _order_for_power_off(ev: _Evaluation) -> list[str]:
    """Most idle watts first, then the biggest node, so the most energy is saved first."""
    sizes = ev.snapshot.node_by_name
    return sorted(ev.powered, key=lambda n: (-ev.settings.watts(n), -sizes[n].maxmem, n))


def _order_for_wake(ev: _Evaluation, names: list[str]) -> list[str]:
    """The biggest sleeping node first: it absorbs a surge best."""
    sizes = ev.snapshot.node_by_name
    return sorted(names, key=lambda n: (-sizes[n].maxmem, n))


def plan_power(inputs: PowerInputs, *, paused: str | None = None) -> PowerPlan:
    """What the power policy wants now: at most one node to switch off or wake, every node's reasons.

    ``paused`` (stale data, lost quorum, read-only…) keeps every node as it is and says why.
    """
    ev = _Evaluation(inputs)
    if paused is None and not inputs.snapshot.quorate:
        paused = "the cluster has lost quorum"
    busy = [n for n, state in ev.states.items() if state in ("draining", "shutting down", "waking")]
    decisions: list[NodeDecision] = []
    chosen: str | None = None

    sleeping = [n for n in ev.states if ev.states[n] in ("off", "failed") and not ev.snapshot.node_by_name[n].online]
    wake_wanted = {}
    for name in _order_for_wake(ev, sleeping):
        reasons, refusals, method = ev.wake_checks(name, manual=False)
        wake_wanted[name] = (reasons, refusals, method)
        if not refusals and chosen is None and not busy and paused is None:
            chosen = name

    off_checks = {}
    for name in _order_for_power_off(ev):
        reasons, refusals, stub = ev.power_off_checks(name, manual=False)
        off_checks[name] = (reasons, refusals, stub)
        if (
            not refusals
            and chosen is None
            and not busy
            and paused is None
            and not any(not r[1] for r in wake_wanted.values())
        ):
            chosen = name

    for node in inputs.snapshot.nodes:
        name = node.name
        state = ev.states[name]
        if name in wake_wanted:
            reasons, refusals, method = wake_wanted[name]
            action: Action = "wake" if name == chosen else "keep"
            shown = reasons if action == "wake" else refusals + [r for r in reasons if r.startswith("wake by")]
            decisions.append(NodeDecision(name, state, action, tuple(shown), tuple(refusals), wake=method))
        elif name in off_checks:
            reasons, refusals, stub = off_checks[name]
            action = "power_off" if name == chosen else "keep"
            shown = (
                reasons
                if action == "power_off"
                else ([*refusals, *reasons] if refusals else [*reasons, "another node goes first"])
            )
            assert stub is not None
            decisions.append(replace(stub, action=action, reasons=tuple(shown), refusals=tuple(refusals)))
        else:
            decisions.append(NodeDecision(name, state, "keep", (f"it is {state}",), (f"it is {state}",)))
    if paused is not None or busy:
        why = paused or f"waiting for {', '.join(busy)} ({', '.join(ev.states[b] for b in busy)})"
        decisions = [replace(d, action="keep", reasons=(f"paused: {why}", *d.reasons)) for d in decisions]
    return PowerPlan(
        quorum=ev.quorum,
        failure_margin=ev.margin,
        required_margin=inputs.settings.failure_margin,
        share=ev.share,
        below_for=ev.below_for,
        above_for=ev.above_for,
        decisions=tuple(decisions),
        paused=paused,
    )


def check_power_off(inputs: PowerInputs, node: str) -> NodeDecision:
    """A user's power-off of ``node``: the same safety checks; refusals name what a force overrides."""
    ev = _Evaluation(inputs)
    if node not in ev.states:
        raise UsageError(f"no node {node!r} in cluster {inputs.snapshot.cluster_name!r}")
    reasons, refusals, stub = ev.power_off_checks(node, manual=True)
    assert stub is not None
    return replace(
        stub, action="keep" if refusals else "power_off", reasons=tuple(refusals or reasons), refusals=tuple(refusals)
    )


def check_wake(inputs: PowerInputs, node: str) -> NodeDecision:
    ev = _Evaluation(inputs)
    if node not in ev.states:
        raise UsageError(f"no node {node!r} in cluster {inputs.snapshot.cluster_name!r}")
    reasons, refusals, method = ev.wake_checks(node, manual=True)
    if method is not None:
        reasons.append(f"wake by {method.describe()}")
    return NodeDecision(
        node, ev.states[node], "keep" if refusals else "wake", tuple(refusals or reasons), tuple(refusals), wake=method
    )


# ---------------------------------------------------------------------------------------------
# energy


@dataclass(frozen=True, slots=True)
class EnergyReport:
    hours_off: Mapping[str, float]
    kwh_saved: Mapping[str, float]

    @property
    def total_hours(self) -> float:
        return sum(self.hours_off.values())

    @property
    def total_kwh(self) -> float:
        return sum(self.kwh_saved.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "node_hours_off": round(self.total_hours, 3),
            "kwh_saved": round(self.total_kwh, 3),
            "nodes": [
                {"node": n, "hours_off": round(h, 3), "kwh_saved": round(self.kwh_saved[n], 3)}
                for n, h in sorted(self.hours_off.items())
            ],
        }


def energy_report(
    events: Iterable[tuple[float, str, str]], settings: PowerSettings, *, now: float, since: float = 0.0
) -> EnergyReport:
    """Node-hours off and kWh saved from (time, node, "off"|"on") events, oldest first.

    A node counts as off from the moment it went offline after a power-off until it was seen
    online again; an interval still open counts up to ``now``.
    """
    off_since: dict[str, float] = {}
    seconds: dict[str, float] = {}
    for at, node, what in sorted(events):
        if what == "off":
            off_since.setdefault(node, at)
        elif what == "on" and node in off_since:
            start = max(off_since.pop(node), since)
            seconds[node] = seconds.get(node, 0.0) + max(0.0, at - start)
    for node, start in off_since.items():
        seconds[node] = seconds.get(node, 0.0) + max(0.0, now - max(start, since))
    hours = {n: s / 3600 for n, s in seconds.items()}
    return EnergyReport(
        MappingProxyType(hours), MappingProxyType({n: h * settings.watts(n) / 1000 for n, h in hours.items()})
    )
