"""``H``: cluster and HA health — quorum votes, corosync members with their HA and LRM state,
the HA manager's master, and every HA resource with its state and the rules that bind it.

Read in a thread worker when shown and every ``POLL`` seconds while it is (4 requests), so the
dashboard's own refresh stays at 2 requests.
"""

from __future__ import annotations

from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Static

from pvetop.errors import PvetopError
from pvetop.model import HaRule
from pvetop.pve.health import ClusterHealth, fetch_cluster_health
from pvetop.ui.footer import KeyFooter
from pvetop.ui.keyed_table import KeyedTable

HEALTH_BINDING = Binding("H", "health", "Cluster/HA", id="app.health", tooltip="Cluster and HA health")


def api_client(app: object) -> Any:
    """The app's live client (a fixed in-memory snapshot has none: its reads then fail, and say so)."""
    return getattr(app, "source", None)


class HealthArrived(Message):
    def __init__(self, health: ClusterHealth | None, error: str = "") -> None:
        super().__init__()
        self.health = health
        self.error = error


def rule_text(rule: HaRule) -> str:
    """How a rule binds: node-affinity names its nodes and whether PVE enforces it for every move."""
    if rule.type == "node-affinity":
        nodes = ", ".join(f"{node}:{prio}" if prio else node for node, prio in rule.nodes)
        kind = "strict: only on" if rule.strict else "prefers"
        return f"{rule.rule} ({kind} {nodes}){' disabled' if rule.disabled else ''}"
    return f"{rule.rule} ({rule.affinity or ''} resource-affinity){' disabled' if rule.disabled else ''}"


class HealthScreen(Screen):
    POLL = 2.0
    DEFAULT_CSS = """
    HealthScreen #health-summary { height: auto; padding: 0 1; background: $boost; }
    HealthScreen DataTable { height: 1fr; }
    HealthScreen .caption { height: 1; padding: 0 1; text-style: bold; }
    """
    BINDINGS = [Binding("escape,q,H", "close", "Back", id="health.back")]
    _shown: tuple[ClusterHealth | None, str, tuple[HaRule, ...]] | None = None

    def compose(self) -> ComposeResult:
        yield Static("reading cluster and HA status…", id="health-summary")
        yield Static("Corosync members", classes="caption")
        yield KeyedTable(id="health-members", cursor_type="row", zebra_stripes=True)
        yield Static("HA resources", classes="caption")
        yield KeyedTable(id="health-resources", cursor_type="row", zebra_stripes=True)
        yield KeyFooter()

    def on_mount(self) -> None:
        members = self.query_one("#health-members", DataTable)
        for label, width in (("Node", 14), ("ID", 4), ("Votes", 5), ("Online", 7), ("IP", 16), ("HA", 12), ("LRM", 22)):
            members.add_column(label, width=width, key=label)
        resources = self.query_one("#health-resources", DataTable)
        for label, width in (("Resource", 10), ("Node", 14), ("State", 12), ("Requested", 10), ("Rules", 80)):
            resources.add_column(label, width=width, key=label)
        members.focus()
        self._poll()
        self.set_interval(self.POLL, self._poll)

    @work(thread=True, exclusive=True, group="health", exit_on_error=False)
    def _poll(self) -> None:
        try:
            self.post_message(HealthArrived(fetch_cluster_health(api_client(self.app))))
        except (PvetopError, AttributeError) as exc:  # AttributeError: a fixed snapshot has no API
            self.post_message(HealthArrived(None, getattr(exc, "message", "") or "this data source has no API"))

    def on_health_arrived(self, message: HealthArrived) -> None:
        """Shows what arrived, unless it is what the screen already shows: rebuilding the tables
        of a cluster with a hundred HA resources every poll kept the event loop busy for a few
        hundred ms each time, and nothing changes between most polls."""
        latest = getattr(self.app, "latest", None)
        rules = latest.snapshot.ha_rules if latest is not None else ()
        if (message.health, message.error, rules) == self._shown:
            return
        self._shown = (message.health, message.error, rules)
        summary = self.query_one("#health-summary", Static)
        health = message.health
        if health is None:
            summary.update(f"cannot read the cluster's health: {message.error}")
            return
        quorum = "quorate" if health.quorate else "NOT QUORATE"
        master = f"HA master {health.master}: {health.master_status}" if health.master else "no HA master (no HA)"
        summary.update(
            f"{health.cluster or 'standalone'}: {quorum}, votes {health.votes_present} present / "
            f"{health.votes_needed} needed / {health.votes_total} total · {master}"
        )
        self.query_one("#health-members", KeyedTable).show_rows(
            [
                (
                    member.name,
                    (
                        member.name + (" (local)" if member.local else ""),
                        "-" if member.nodeid is None else str(member.nodeid),
                        str(member.votes),
                        "yes" if member.online else "NO",
                        member.ip,
                        member.ha_state or "-",
                        member.lrm or "-",
                    ),
                )
                for member in health.members
            ]
        )
        self.query_one("#health-resources", KeyedTable).show_rows(
            [
                (
                    resource.sid,
                    (
                        resource.sid,
                        resource.node,
                        resource.state,
                        resource.request_state,
                        "; ".join(rule_text(rule) for rule in rules if resource.sid in rule.resources) or "-",
                    ),
                )
                for resource in health.resources
            ]
        )

    def action_close(self) -> None:
        self.dismiss()
