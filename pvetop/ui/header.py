"""The three header lines: cluster, load bars and balance, and how fresh the data is."""

from __future__ import annotations

import time
from dataclasses import dataclass

from rich.text import Text
from textual.widgets import Static

from pvetop.policy.metrics import Balance, ClusterTotals, imbalance_text
from pvetop.text import visible
from pvetop.ui import formatting as fmt

BAR_WIDTH = 20


@dataclass(frozen=True, slots=True)
class Freshness:
    """How old the shown data is, and why it is stale if the last polls failed."""

    age_seconds: float | None  # None: nothing fetched yet
    stale_since: float | None = None  # epoch seconds of the first failed poll in a row
    stale_reason: str = ""
    retry_in: float | None = None


@dataclass(frozen=True, slots=True)
class HeaderView:
    cluster_name: str
    quorate: bool
    totals: ClusterTotals
    balance: Balance
    freshness: Freshness
    interval: float
    paused: bool = False
    read_only: bool = False
    insecure_warning: str = ""
    pve_rebalances_ha: bool = False  # PVE >= 9.2 crs ha-auto-rebalance: it moves HA guests itself
    notes: tuple[str, ...] = ()  # the automation's state, e.g. "balancer advise · plan: 3 moves"
    api_warnings: tuple[str, ...] = ()  # malformed API entries the snapshot skipped (pve/parse.py)


def _bar_line(label: str, fraction_value: float, detail: str) -> Text:
    style = "red" if fraction_value >= 0.9 else "yellow" if fraction_value >= 0.7 else "green"
    line = Text(f"{label} [", style="bold")
    line.append(fmt.bar(fraction_value, BAR_WIDTH), style=style)
    line.append("] ", style="bold")
    line.append(detail)
    return line


def render_header(view: HeaderView) -> Text:
    totals, balance, fresh = view.totals, view.balance, view.freshness
    first = Text()
    first.append(visible(view.cluster_name) or "(standalone)", style="bold")
    if view.quorate:
        first.append("  quorate", style="green")
    else:
        first.append("  NO QUORUM", style="bold white on red")
    first.append(f"  nodes {totals.nodes_online}/{totals.nodes_total} online")
    first.append(f"  guests {totals.guests_running}/{totals.guests_total} running")
    if view.read_only:
        first.append("  READ-ONLY", style="bold cyan")
    if view.insecure_warning:
        first.append(f"  {visible(view.insecure_warning)}", style="bold yellow")

    second = _bar_line("CPU", totals.cpu_fraction, f"{totals.cpu_fraction * 100:5.1f}% of {totals.maxcpu} cores")
    second.append("   ")
    second.append_text(
        _bar_line(
            "Mem", totals.mem_fraction, f"{totals.mem_fraction * 100:5.1f}% {fmt.used_of(totals.mem, totals.maxmem)}"
        )
    )

    third = Text()
    imbalance_style = "yellow" if balance.imbalance > 0.25 else ""
    third.append(f"imbalance {imbalance_text(balance.imbalance)}", style=imbalance_style)
    third.append(f"  spread {balance.spread:.0f} pts")
    if balance.hottest:
        third.append(f"  hottest {visible(balance.hottest)}")
    if view.pve_rebalances_ha:
        third.append("  PVE rebalances HA guests", style="cyan")
    for note in view.notes:
        third.append(f"  {visible(note)}", style="magenta")
    third.append("   ")
    if fresh.stale_since is not None:
        since = time.strftime("%H:%M:%S", time.localtime(fresh.stale_since))
        third.append(f" STALE since {since} ({visible(fresh.stale_reason)}) ", style="bold white on red")
        if fresh.retry_in is not None:
            third.append(f" retry in {fresh.retry_in:.0f}s")
    elif fresh.age_seconds is None:
        third.append("waiting for data…", style="italic")
    else:
        third.append(f"data {fmt.age(fresh.age_seconds)} old", style="dim")
    third.append(f"  every {view.interval:g}s", style="dim")
    if view.paused:
        third.append("  PAUSED", style="bold black on yellow")
    lines = [first, second, third]
    if view.api_warnings:
        more = len(view.api_warnings) - 1
        line = Text("⚠ malformed API data skipped: ", style="bold yellow")
        line.append(visible(view.api_warnings[0]), style="yellow")
        if more:
            line.append(f" (+{more} more: pvetop status lists them)", style="yellow")
        lines.append(line)
    return Text("\n").join(lines)


class ClusterHeader(Static):
    """Shows a ``HeaderView``; the app builds a new one whenever something in it changes."""

    DEFAULT_CSS = """
    ClusterHeader { height: auto; padding: 0 1; background: $panel; }  /* lines wrap on narrow terminals */
    """

    _shown: Text | None = None

    def show(self, view: HeaderView) -> None:
        self.show_text(render_header(view))

    def show_text(self, text: Text) -> None:
        """Repaints the header alone when its text changed. A layout redraws the whole screen
        (~15 ms CPU beside a 4000-guest table, every second for the data's age), so it runs only
        when the header's height changes: its lines wrap on a narrow terminal."""
        if text == self._shown:
            return
        self._shown = text
        width, height = self.content_size
        self.update(text, layout=not width)
        if width and self.get_content_height(self.size, self.size, width) != height:
            self.refresh(layout=True)
