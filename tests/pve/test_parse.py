"""Raw PVE answers (shaped per PVE's API schema) -> model types with normalised units."""

from __future__ import annotations

import pytest

from pvetop.model import CrsOptions, HaRule
from pvetop.pve.parse import (
    MalformedAnswer,
    Warnings,
    build_snapshot,
    parse_config_nodes,
    parse_crs,
    parse_ha_rules,
    parse_resources,
    parse_tags,
)

GIB = 1024**3

RESOURCES = [
    {
        "id": "node/pve1",
        "type": "node",
        "node": "pve1",
        "status": "online",
        "cpu": 0.125,
        "maxcpu": 16,
        "mem": 8 * GIB,
        "maxmem": 64 * GIB,
        "disk": 10 * GIB,
        "maxdisk": 100 * GIB,
        "uptime": 3600,
        "level": "",
        "cgroup-mode": 2,
    },
    {"id": "node/pve2", "type": "node", "node": "pve2", "status": "offline"},
    {
        "id": "qemu/100",
        "type": "qemu",
        "vmid": 100,
        "node": "pve1",
        "name": "web",
        "status": "running",
        "template": 0,
        "cpu": 0.5,
        "maxcpu": 2,
        "mem": 1 * GIB,
        "maxmem": 4 * GIB,
        "disk": 0,
        "maxdisk": 32 * GIB,
        "netin": 1000,
        "netout": 2000,
        "diskread": 3000,
        "diskwrite": 4000,
        "uptime": 60,
        "tags": "prod;web",
        "hastate": "started",
        "pool": "apps",
        "memhost": 1 * GIB,
    },
    {
        "id": "lxc/101",
        "type": "lxc",
        "vmid": 101,
        "node": "pve1",
        "name": "dns",
        "status": "stopped",
        "template": 1,
        "cpu": 0,
        "maxcpu": 1,
        "mem": 0,
        "maxmem": 512 * 1024**2,
        "lock": "backup",
    },
    {"id": "qemu/102", "type": "qemu", "vmid": 102, "node": "pve2", "status": "unknown", "tags": "db"},
    {
        "id": "storage/pve1/local-lvm",
        "type": "storage",
        "storage": "local-lvm",
        "node": "pve1",
        "plugintype": "lvmthin",
        "shared": 0,
        "disk": 5 * GIB,
        "maxdisk": 50 * GIB,
        "status": "available",
        "content": "images,rootdir",
    },
    {"id": "pool/apps", "type": "pool", "pool": "apps"},
    {"id": "sdn/pve1/localnetwork", "type": "sdn", "sdn": "localnetwork", "node": "pve1", "status": "ok"},
]

STATUS = [
    {"type": "cluster", "id": "cluster", "name": "homelab", "nodes": 2, "quorate": 1, "version": 4},
    {
        "type": "node",
        "id": "node/pve1",
        "name": "pve1",
        "nodeid": 1,
        "ip": "10.0.0.1",
        "online": 1,
        "local": 1,
        "level": "",
    },
    {
        "type": "node",
        "id": "node/pve2",
        "name": "pve2",
        "nodeid": 2,
        "ip": "10.0.0.2",
        "online": 0,
        "local": 0,
        "level": "",
    },
]


def snapshot(resources=RESOURCES, status=STATUS, **kwargs):
    return build_snapshot(
        resources,
        status,
        crs=kwargs.get("crs", CrsOptions()),
        ha_rules=kwargs.get("ha_rules", ()),
        fetched_at=123.0,
        api_requests=2,
    )


def test_nodes_keep_units_and_get_membership_from_cluster_status():
    snap = snapshot()
    pve1, pve2 = snap.nodes
    assert (pve1.name, pve1.status, pve1.cpu, pve1.maxcpu, pve1.mem, pve1.maxmem) == (
        "pve1",
        "online",
        0.125,
        16,
        8 * GIB,
        64 * GIB,
    )
    assert (pve1.nodeid, pve1.ip, pve1.votes) == (1, "10.0.0.1", 1)
    assert (pve2.status, pve2.maxmem, pve2.nodeid) == ("offline", 0, 2)
    assert (snap.cluster_name, snap.quorate, snap.fetched_at, snap.api_requests) == ("homelab", True, 123.0, 2)


def test_guest_fields_are_normalised():
    web = snapshot().guest_by_vmid[100]
    assert (web.type, web.node, web.name, web.status, web.template) == ("qemu", "pve1", "web", "running", False)
    assert (web.cpu, web.maxcpu, web.mem, web.maxmem, web.maxdisk) == (0.5, 2.0, GIB, 4 * GIB, 32 * GIB)
    assert (web.netin, web.netout, web.diskread, web.diskwrite, web.uptime) == (1000, 2000, 3000, 4000, 60)
    assert (web.tags, web.hastate, web.pool, web.lock) == (("prod", "web"), "started", "apps", None)
    dns = snapshot().guest_by_vmid[101]
    assert (dns.type, dns.template, dns.lock, dns.tags, dns.hastate) == ("lxc", True, "backup", (), None)


def test_guest_on_offline_node_is_kept_as_unknown_with_its_few_fields():
    lost = snapshot().guest_by_vmid[102]
    assert (lost.status, lost.node, lost.tags, lost.name, lost.maxmem) == ("unknown", "pve2", ("db",), "", 0)
    assert [g.vmid for g in snapshot().guests_by_node["pve2"]] == [102]


def test_storage_and_ignored_types():
    snap = snapshot()
    assert [s.storage for s in snap.storage] == ["local-lvm"]
    local = snap.storage[0]
    assert (local.shared, local.plugintype, local.maxdisk, local.content) == (
        False,
        "lvmthin",
        50 * GIB,
        ("images", "rootdir"),
    )
    assert sorted(g.vmid for g in snap.guests) == [100, 101, 102]


def test_guests_come_sorted_by_vmid():
    reordered = [RESOURCES[4], RESOURCES[3], RESOURCES[2], RESOURCES[0]]
    assert [g.vmid for g in snapshot(reordered).guests] == [100, 101, 102]


def test_quorum_lost_and_votes_when_present():
    status = [dict(STATUS[0], quorate=0), dict(STATUS[1], votes=2), STATUS[2]]
    snap = snapshot(status=status)
    assert snap.quorate is False
    assert snap.node_by_name["pve1"].votes == 2 and snap.total_votes == 3


def test_standalone_node_takes_its_name_and_is_quorate():
    status = [{"type": "node", "id": "node/pve1", "name": "pve1", "online": 1, "local": 1, "nodeid": 0}]
    snap = snapshot(resources=[RESOURCES[0]], status=status)
    assert (snap.cluster_name, snap.quorate, len(snap.nodes)) == ("pve1", True, 1)


def test_member_missing_from_resources_still_appears():
    snap = snapshot(resources=[RESOURCES[0]])
    assert snap.node_by_name["pve2"].status == "offline"


@pytest.mark.parametrize(
    "text, tags",
    [
        ("a;b", ("a", "b")),
        ("", ()),
        (None, ()),
        ("a,b c", ("a", "b", "c")),
        ("solo;", ("solo",)),
    ],
)
def test_tags(text, tags):
    assert parse_tags(text) == tags


def test_crs_as_object_or_property_string():
    warnings = Warnings()
    assert parse_crs({"crs": {"ha": "dynamic", "ha-auto-rebalance": 1}}, warnings) == CrsOptions("dynamic", True)
    assert parse_crs({"crs": "ha=static,ha-auto-rebalance=0"}, warnings) == CrsOptions("static", False)
    assert parse_crs({"keyboard": "de"}, warnings) == CrsOptions()
    assert not warnings


def test_ha_rules():
    warnings = Warnings()
    rules = parse_ha_rules(
        [
            {
                "rule": "keep-db",
                "type": "node-affinity",
                "resources": "vm:100,ct:101",
                "nodes": "pve1:2,pve2",
                "strict": 1,
                "digest": "x",
            },
            {
                "rule": "apart",
                "type": "resource-affinity",
                "resources": "vm:100,vm:102",
                "affinity": "negative",
                "disable": 1,
            },
        ],
        warnings,
    )
    assert rules == (
        HaRule("keep-db", "node-affinity", ("vm:100", "ct:101"), (("pve1", 2), ("pve2", 0)), True, None, False),
        HaRule("apart", "resource-affinity", ("vm:100", "vm:102"), (), False, "negative", True),
    )
    assert not warnings


@pytest.mark.parametrize("answer", [{"data": []}, None, "text", 5])
def test_an_answer_that_is_not_a_list_is_malformed_and_named(answer):
    with pytest.raises(MalformedAnswer, match="GET /cluster/resources: expected a list"):
        parse_resources(answer, Warnings())
    with pytest.raises(MalformedAnswer, match="GET /cluster/status: expected a list"):
        build_snapshot([], answer, crs=CrsOptions(), ha_rules=(), fetched_at=0, api_requests=2)
    with pytest.raises(MalformedAnswer, match="GET /cluster/ha/rules: expected a list"):
        parse_ha_rules(answer, Warnings())
    with pytest.raises(MalformedAnswer, match="GET /cluster/options: expected an object"):
        parse_crs([answer], Warnings())


@pytest.mark.parametrize(
    "entry, needle",
    [
        ({"id": "qemu/100", "type": "qemu", "vmid": 100}, "field 'node' is None, expected a node name"),
        ({"id": "qemu/100", "type": "qemu", "vmid": "x", "node": "n"}, "'qemu/100': field 'vmid' is 'x'"),
        ({"id": "qemu/100", "type": "qemu", "vmid": 100, "node": 5}, "field 'node' is 5"),
        ({"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "../access"}, "field 'node' is '../access'"),
        ({"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "n", "status": 7}, "field 'status' is 7"),
        ({"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "n", "cpu": float("nan")}, "field 'cpu' is nan"),
        ({"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "n", "mem": float("inf")}, "field 'mem' is inf"),
        ({"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "n", "mem": 10**30}, "field 'mem' is 1000000"),
        ({"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "n", "mem": -1}, "field 'mem' is -1"),
        ({"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "n", "template": "yes"}, "field 'template'"),
        ({"id": "qemu/100", "type": "qemu", "vmid": 100, "node": "n", "tags": ["a"]}, "field 'tags' is ['a']"),
        ({"id": "node/x", "type": "node", "node": 17}, "field 'node' is 17"),
        ({"id": "node/x", "type": "node", "node": "x", "maxcpu": "many"}, "field 'maxcpu' is 'many'"),
        ({"id": "storage/x", "type": "storage", "node": "x", "storage": 3}, "field 'storage' is 3"),
        ({"type": ["qemu"]}, "field 'type' is ['qemu']"),
        ("garbage", "skipped entry 'garbage': expected an object, got str"),
        (None, "expected an object, got null"),
    ],
)
def test_a_bad_entry_is_skipped_with_a_warning_and_the_rest_stays(entry, needle):
    snap = snapshot([*RESOURCES, entry])
    good = snapshot()
    assert (snap.nodes, snap.guests, snap.storage) == (good.nodes, good.guests, good.storage)
    assert len(snap.warnings) == 1 and snap.warnings[0].startswith("GET /cluster/resources: skipped entry")
    assert needle in snap.warnings[0], snap.warnings[0]


def test_duplicate_vmids_and_nodes_keep_the_first():
    first = next(r for r in RESOURCES if r["type"] == "qemu")
    twin = {**first, "name": "twin"}
    node_twin = {**RESOURCES[0], "maxcpu": 1}
    snap = snapshot([*RESOURCES, twin, node_twin])
    assert snap.guest_by_vmid[first["vmid"]].name == first["name"]
    assert snap.node_by_name[RESOURCES[0]["node"]].maxcpu == RESOURCES[0]["maxcpu"]
    assert len(snap.warnings) == 2 and all("duplicate" in w for w in snap.warnings)


def test_an_unreadable_cluster_entry_counts_as_a_cluster_without_quorum():
    status = [{**entry, "name": 5} if entry["type"] == "cluster" else entry for entry in STATUS]
    snap = snapshot(status=status)
    assert snap.cluster_name == "" and snap.quorate is False
    assert snap.warnings == ("GET /cluster/status: skipped entry 'cluster': field 'name' is 5, expected a string "
                             "of at most 4096 characters",)  # fmt: skip


def test_a_bad_member_is_skipped_and_the_node_stays_from_resources():
    status = [{**entry, "nodeid": "one"} if entry.get("name") == "pve1" else entry for entry in STATUS]
    snap = snapshot(status=status)
    assert snap.node_by_name["pve1"].nodeid is None and "field 'nodeid' is 'one'" in snap.warnings[0]


def test_a_bad_ha_rule_is_skipped_and_the_others_kept():
    warnings = Warnings()
    good = {"rule": "ok", "type": "node-affinity", "resources": "vm:100", "nodes": "pve1"}
    rules = parse_ha_rules(
        [{"type": "node-affinity"}, {"rule": "bad", "type": "node-affinity", "nodes": "pve1:high"}, 3, good],
        warnings,
    )
    assert [rule.rule for rule in rules] == ["ok"]
    assert len(warnings) == 3 and all(w.startswith("GET /cluster/ha/rules: skipped entry") for w in warnings.as_tuple())


def test_slow_data_warnings_travel_in_every_snapshot_and_are_capped():
    bad = [{"id": f"qemu/{vmid}", "type": "qemu", "vmid": vmid, "node": 1} for vmid in range(100, 150)]
    snap = build_snapshot(
        [*RESOURCES, *bad], STATUS, crs=CrsOptions(), ha_rules=(), fetched_at=0, api_requests=2, warnings=("rule x",)
    )
    assert snap.warnings[0] == "rule x" and len(snap.warnings) == 21
    assert snap.warnings[-1] == "... and 31 more skipped entries"


def test_votes_from_corosync_config_nodes():
    warnings = Warnings()
    votes = parse_config_nodes(
        [
            {"node": "pve1", "name": "pve1", "nodeid": "1", "quorum_votes": "3"},
            {"node": "pve2", "name": "pve2", "nodeid": "2", "quorum_votes": "1"},
            {"node": 7, "quorum_votes": 1},
        ],
        warnings,
    )
    snap = build_snapshot(RESOURCES, STATUS, crs=CrsOptions(), ha_rules=(), fetched_at=0, api_requests=2, votes=votes)
    assert snap.node_by_name["pve1"].votes == 3 and snap.total_votes == 4
    assert len(warnings) == 1
