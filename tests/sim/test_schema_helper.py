"""The schema checker must accept what PVE really sends and reject what it does not.

The conformance suite trusts ``check_response``; these hand-written payloads prove that it can
fail, so an empty violation list there means something.
"""

import json
from pathlib import Path

import pytest

from tests import pve_schema
from tests.pve_schema import UnknownEndpoint, check_response, find_endpoint

GOOD_NODE_ENTRY = {
    "id": "node/pve1",
    "type": "node",
    "node": "pve1",
    "status": "online",
    "cpu": 0.125,
    "maxcpu": 8,
    "mem": 4 * 2**30,
    "maxmem": 32 * 2**30,
    "disk": 10**9,
    "maxdisk": 10**11,
    "uptime": 3600,
    "level": "",
}
GOOD_GUEST_ENTRY = {
    "id": "qemu/100",
    "type": "qemu",
    "vmid": 100,
    "node": "pve1",
    "name": "web",
    "status": "running",
    "template": 0,
    "cpu": 0.5,
    "maxcpu": 2,
    "mem": 2**30,
    "maxmem": 2 * 2**30,
    "disk": 0,
    "maxdisk": 32 * 2**30,
    "netin": 1,
    "netout": 2,
    "diskread": 3,
    "diskwrite": 4,
    "uptime": 60,
    "tags": "prod;web",
}
GOOD_TASK_STATUS = {
    "upid": "UPID:pve1:0000A1B2:0001C3D4:65000000:qmigrate:100:root@pam:",
    "node": "pve1",
    "pid": 41394,
    "pstart": 115668,
    "starttime": 1694498816,
    "type": "qmigrate",
    "id": "100",
    "user": "root@pam",
    "status": "stopped",
    "exitstatus": "OK",
}


def test_good_cluster_resources_pass():
    data = [
        GOOD_NODE_ENTRY,
        GOOD_GUEST_ENTRY,
        {"id": "qemu/101", "type": "qemu", "vmid": 101, "node": "pve2", "status": "unknown"},
    ]
    assert check_response("GET", "/cluster/resources", data) == []


def test_missing_required_property_is_reported():
    entry = dict(GOOD_GUEST_ENTRY)
    del entry["id"]
    assert check_response("GET", "/cluster/resources", [entry]) == ["data[0]: required property 'id' is missing"]


def test_null_counts_as_missing_for_required_but_not_for_optional():
    assert check_response("GET", "/cluster/resources", [dict(GOOD_GUEST_ENTRY, tags=None)]) == []
    violations = check_response("GET", "/cluster/resources", [dict(GOOD_GUEST_ENTRY, type=None)])
    assert violations == ["data[0]: required property 'type' is missing"]


@pytest.mark.parametrize(
    ("field", "bad_value", "expected"),
    [
        ("maxmem", "2147483648", 'data[0].maxmem: expected integer, got "2147483648"'),
        ("maxmem", 2.5, "data[0].maxmem: expected integer, got 2.5"),
        ("cpu", "0.5", 'data[0].cpu: expected number, got "0.5"'),
        ("template", True, "data[0].template: expected boolean, got true"),
        ("template", 2, "data[0].template: expected boolean, got 2"),
        ("name", 7, "data[0].name: expected string, got 7"),
        ("type", "vm", 'data[0].type: "vm" is not one of'),
        ("vmid", 99, "data[0].vmid: 99 is below the minimum 100"),
        ("mem", -1, "data[0].mem: -1 is below the minimum 0"),
    ],
)
def test_wrong_types_enums_and_ranges_are_reported(field, bad_value, expected):
    violations = check_response("GET", "/cluster/resources", [dict(GOOD_GUEST_ENTRY, **{field: bad_value})])
    assert len(violations) == 1
    assert violations[0].startswith(expected)


def test_number_accepts_integers_and_boolean_accepts_zero_one():
    entry = dict(GOOD_GUEST_ENTRY, cpu=0, template=1)
    assert check_response("GET", "/cluster/resources", [entry]) == []


def test_a_list_where_an_object_is_due_is_reported():
    assert check_response("GET", "/cluster/resources", {"data": []}) == ['data: expected array, got {"data": []}']


def test_nested_objects_are_checked():
    status = {
        "boot-info": {"mode": "uefi"},
        "cpu": 0.1,
        "cpuinfo": {"cores": 4, "cpus": 8, "model": "x", "sockets": 1},
        "current-kernel": {"machine": "x86_64", "release": "6.8", "sysname": "Linux", "version": "#1"},
        "loadavg": ["0.10", 0.2, "0.30"],
        "memory": {"available": 1, "free": 1, "total": 2, "used": 1},
        "pveversion": "pve-manager/9.2.0/abc",
        "rootfs": {"avail": 1, "free": 1, "total": 2},
    }
    assert check_response("GET", "/nodes/pve1/status", status) == [
        "data.boot-info.mode: \"uefi\" is not one of ['efi', 'legacy-bios']",
        "data.loadavg[1]: expected string, got 0.2",
        "data.rootfs: required property 'used' is missing",
    ]


def test_null_returns_accept_only_null():
    assert check_response("POST", "/nodes/pve1/status", None) == []
    assert check_response("POST", "/nodes/pve1/status", "UPID:pve1:1:2:3:x:y:root@pam:") == [
        'data: expected null, got "UPID:pve1:1:2:3:x:y:root@pam:"'
    ]


def test_task_status_good_and_bad():
    path = f"/nodes/pve1/tasks/{GOOD_TASK_STATUS['upid']}/status"
    assert check_response("GET", path, GOOD_TASK_STATUS) == []
    bad = dict(GOOD_TASK_STATUS, status="done", pid="41394")
    assert sorted(check_response("GET", path, bad)) == [
        'data.pid: expected integer, got "41394"',
        "data.status: \"done\" is not one of ['running', 'stopped']",
    ]


def test_pattern_is_a_full_match():
    good = {"release": "9.2", "repoid": "0123abcd", "version": "9.2.0"}
    assert check_response("GET", "/version", good) == []
    assert check_response("GET", "/version", dict(good, repoid="0123abcdXYZ")) == [
        'data.repoid: "0123abcdXYZ" does not match /[0-9a-fA-F]{8,64}/'
    ]


def test_additional_properties_zero_forbids_unknown_keys():
    pool = {"members": [{"id": "qemu/100", "node": "pve1", "type": "qemu", "vmid": 100, "name": "web"}]}
    assert check_response("GET", "/pools/prod", pool) == []
    assert check_response("GET", "/pools/prod", dict(pool, poolid="prod")) == [
        "data: property 'poolid' is not allowed by the schema"
    ]


def test_consumer_expectations_catch_shapes_the_schema_leaves_open():
    good = {"/": {"Sys.Audit": 1, "VM.Audit": 1}, "/vms": {"VM.Migrate": 0}}
    assert check_response("GET", "/access/permissions", good) == []
    assert check_response("GET", "/access/permissions", {"/": ["Sys.Audit"]}) == [
        'data./: expected object, got ["Sys.Audit"]'
    ]
    votes = [{"node": "pve1", "name": "pve1", "nodeid": "1", "quorum_votes": 1}]
    assert check_response("GET", "/cluster/config/nodes", votes) == []
    assert check_response("GET", "/cluster/config/nodes", [dict(votes[0], quorum_votes="one")]) == [
        'data[0].quorum_votes: "one" does not match /\\d+/'
    ]
    assert check_response("GET", "/cluster/tasks", [{"upid": "UPID:pve1:1:2:3:x:y:root@pam"}]) == [
        'data[0].upid: "UPID:pve1:1:2:3:x:y:root@pam" does not match /UPID:.+:/',
        "data[0]: required property 'node' is missing",
        "data[0]: required property 'type' is missing",
        "data[0]: required property 'id' is missing",
        "data[0]: required property 'user' is missing",
        "data[0]: required property 'starttime' is missing",
    ]


def test_rrd_rows_need_numeric_metrics():
    assert check_response("GET", "/nodes/pve1/rrddata", [{"time": 60, "cpu": 0.1, "memused": None}]) == []
    assert check_response("GET", "/nodes/pve1/rrddata", [{"time": 60, "cpu": "0.1"}]) == [
        'data[0].cpu: expected number, got "0.1"'
    ]


def test_endpoint_lookup_prefers_literal_paths_and_strips_the_api_prefix():
    assert find_endpoint("get", "/api2/json/cluster/ha/status/current")[0] == "/cluster/ha/status/current"
    assert find_endpoint("GET", "/nodes/pve1/qemu/100/status/current")[0] == (
        "/nodes/{node}/qemu/{vmid}/status/current"
    )
    with pytest.raises(UnknownEndpoint, match="GET /nodes/pve1/nonsense"):
        find_endpoint("GET", "/nodes/pve1/nonsense")
    with pytest.raises(UnknownEndpoint):
        find_endpoint("DELETE", "/version")


def test_the_schema_subset_lives_in_the_repo_and_says_where_it_comes_from():
    document = json.loads(pve_schema.SCHEMA_FILE.read_text(encoding="utf-8"))
    assert pve_schema.SCHEMA_FILE.parent == Path(__file__).resolve().parent.parent
    assert document["source"].startswith("proxmox/pve-docs api-viewer/apidata.js @ ")
    assert {(e["method"], e["path"]) for e in document["endpoints"]} >= {("GET", "/cluster/resources")}


def test_cluster_options_property_strings_must_arrive_parsed():
    parsed = {
        "crs": {"ha": "static", "ha-auto-rebalance": 1},
        "migration": {"type": "secure"},
        "ha": {"shutdown_policy": "conditional"},
        "keyboard": "en-us",
    }
    assert check_response("GET", "/cluster/options", parsed) == []
    raw_strings = {"crs": "ha=static,ha-auto-rebalance=1", "migration": "type=secure"}
    assert check_response("GET", "/cluster/options", raw_strings) == [
        'data.crs: expected object, got "ha=static,ha-auto-rebalance=1"',
        'data.migration: expected object, got "type=secure"',
    ]
