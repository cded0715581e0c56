"""Cluster and HA health in one read: quorum votes, corosync members, the HA manager's master,
each node's LRM and every HA resource's state.

Four requests (``/cluster/status``, ``/cluster/config/nodes``, ``/cluster/ha/status/current``,
``/cluster/ha/status/manager_status``), made only while the health view is open. Quorum follows
corosync: with ``total`` expected votes, ``total // 2 + 1`` are needed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pvetop.errors import ApiError
from pvetop.pve.client import PveClient


@dataclass(frozen=True, slots=True)
class Member:
    name: str
    nodeid: int | None
    votes: int
    online: bool
    ip: str
    local: bool
    ha_state: str  # the HA manager's node state: online, maintenance, fence, unknown, gone ("" without HA)
    lrm: str  # the node's LRM, as PVE words it: "active", "idle", "maintenance mode", "old timestamp - dead?"


@dataclass(frozen=True, slots=True)
class HaResource:
    sid: str
    node: str
    state: str  # started, stopped, fence, error, migrate, ... (the CRM's)
    request_state: str  # what the user asked for


@dataclass(frozen=True, slots=True)
class ClusterHealth:
    cluster: str
    quorate: bool
    members: tuple[Member, ...]
    master: str  # "" when no CRM is master
    master_status: str
    resources: tuple[HaResource, ...]

    @property
    def votes_total(self) -> int:
        return sum(member.votes for member in self.members)

    @property
    def votes_present(self) -> int:
        return sum(member.votes for member in self.members if member.online)

    @property
    def votes_needed(self) -> int:
        return self.votes_total // 2 + 1


_LRM_TEXT = re.compile(r"^\S+ \(([^,)]+)")  # "pve1 (active, watchdog active, Mon ...)"


def fetch_cluster_health(client: PveClient) -> ClusterHealth:
    status = client.get("cluster/status")
    try:
        config_nodes = client.get("cluster/config/nodes")
    except ApiError:  # a standalone node has no corosync config
        config_nodes = []
    current = client.get("cluster/ha/status/current")
    manager = client.get("cluster/ha/status/manager_status")
    votes = {
        str(item.get("node") or item.get("name")): int(item.get("quorum_votes") or 1)
        for item in config_nodes
        if isinstance(item, dict)
    }
    node_states = (manager.get("manager_status") or {}).get("node_status") or {} if isinstance(manager, dict) else {}
    lrm_text: dict[str, str] = {}
    master, master_status = "", ""
    resources = []
    for entry in current if isinstance(current, list) else []:
        if not isinstance(entry, dict):
            continue
        kind = entry.get("type")
        if kind == "lrm":
            match = _LRM_TEXT.match(str(entry.get("status", "")))
            lrm_text[str(entry.get("node"))] = match.group(1) if match else str(entry.get("status", ""))
        elif kind == "master":
            master, master_status = str(entry.get("node", "")), str(entry.get("status", ""))
        elif kind == "service":
            resources.append(
                HaResource(
                    sid=str(entry.get("sid", "")),
                    node=str(entry.get("node", "")),
                    state=str(entry.get("state") or entry.get("crm_state") or ""),
                    request_state=str(entry.get("request_state", "")),
                )
            )
    cluster, quorate, members = "", True, []
    for entry in status if isinstance(status, list) else []:
        if not isinstance(entry, dict):
            continue
        if entry.get("type") == "cluster":
            cluster, quorate = str(entry.get("name", "")), bool(entry.get("quorate"))
        elif entry.get("type") == "node":
            name = str(entry.get("name", ""))
            members.append(
                Member(
                    name=name,
                    nodeid=int(entry["nodeid"]) if entry.get("nodeid") is not None else None,
                    votes=votes.get(name, 1),
                    online=bool(entry.get("online")),
                    ip=str(entry.get("ip", "")),
                    local=bool(entry.get("local")),
                    ha_state=str(node_states.get(name, "")),
                    lrm=lrm_text.get(name, ""),
                )
            )
    members.sort(key=lambda member: member.name)
    return ClusterHealth(cluster, quorate, tuple(members), master, master_status, tuple(resources))
