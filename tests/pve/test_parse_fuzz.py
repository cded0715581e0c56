"""Hypothesis against the parse boundary: whatever JSON an API answers, ``build_snapshot`` either
refuses the answer (``MalformedAnswer``) or returns a snapshot whose every value is usable —
finite, in range, of the declared type, with unique vmids and node names — and names each entry
it skipped in ``warnings``. Nothing else may escape."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pvetop.model import ClusterSnapshot, CrsOptions
from pvetop.pve.parse import (
    MAX_COUNT,
    NODE_NAME,
    MalformedAnswer,
    Warnings,
    build_snapshot,
    parse_config_nodes,
    parse_crs,
    parse_ha_rules,
)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.sampled_from(["0", "1", "nan", "inf", "-1", "1e999", "pve1", "../x", "qemu", "lxc", "node", "cluster"]),
)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)),
    max_leaves=12,
)

GUEST = {"type": "qemu", "vmid": 100, "node": "pve1", "status": "running", "name": "web", "cpu": 0.5, "maxcpu": 2,
         "mem": 1, "maxmem": 2, "tags": "a;b", "template": 0, "hastate": "started"}  # fmt: skip
NODE = {"type": "node", "node": "pve1", "status": "online", "cpu": 0.1, "maxcpu": 8, "mem": 1, "maxmem": 2}
STORAGE = {"type": "storage", "storage": "local", "node": "pve1", "shared": 0, "disk": 1, "maxdisk": 2}
CLUSTER = {"type": "cluster", "name": "c", "quorate": 1}
MEMBER = {"type": "node", "name": "pve1", "nodeid": 1, "ip": "10.0.0.1", "online": 1}


@st.composite
def mutated(draw: st.DrawFn, template: dict[str, Any]) -> Any:
    """A real-looking entry with some fields replaced by anything, some removed, or no entry at all."""
    if draw(st.integers(0, 9)) == 0:
        return draw(JSON)
    entry = dict(template)
    for key in draw(st.lists(st.sampled_from(sorted(template)), max_size=3)):
        if draw(st.booleans()):
            entry[key] = draw(JSON)
        else:
            entry.pop(key, None)
    if "vmid" in entry and draw(st.booleans()):
        entry["vmid"] = draw(st.integers(90, 110))  # duplicates and out-of-range ids
    return entry


RESOURCES = st.one_of(st.lists(st.one_of(mutated(GUEST), mutated(NODE), mutated(STORAGE)), max_size=12), JSON)
STATUS = st.one_of(st.lists(st.one_of(mutated(CLUSTER), mutated(MEMBER)), max_size=5), JSON)


def assert_usable(snapshot: ClusterSnapshot) -> None:
    assert isinstance(snapshot.cluster_name, str) and isinstance(snapshot.quorate, bool)
    assert len({n.name for n in snapshot.nodes}) == len(snapshot.nodes)
    assert len({g.vmid for g in snapshot.guests}) == len(snapshot.guests)
    for node in snapshot.nodes:
        assert NODE_NAME.fullmatch(node.name) and isinstance(node.status, str)
        for value in (node.maxcpu, node.mem, node.maxmem, node.disk, node.maxdisk, node.uptime, node.votes):
            assert type(value) is int and 0 <= value <= MAX_COUNT
        assert math.isfinite(node.cpu) and node.cpu >= 0 and math.isfinite(node.load)
    for guest in snapshot.guests:
        assert guest.type in ("qemu", "lxc") and NODE_NAME.fullmatch(guest.node)
        assert isinstance(guest.status, str) and isinstance(guest.name, str)
        assert all(isinstance(tag, str) for tag in guest.tags) and isinstance(guest.template, bool)
        for value in (guest.mem, guest.maxmem, guest.netin, guest.netout, guest.diskread, guest.uptime):
            assert type(value) is int and 0 <= value <= MAX_COUNT
        assert math.isfinite(guest.cpu) and math.isfinite(guest.maxcpu) and math.isfinite(guest.cpu_cores_used)
    assert all(isinstance(w, str) for w in snapshot.warnings) and len(snapshot.warnings) <= 21


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(resources=RESOURCES, status=STATUS)
def test_any_answer_is_refused_or_gives_a_usable_snapshot(resources: Any, status: Any) -> None:
    try:
        snapshot = build_snapshot(resources, status, crs=CrsOptions(), ha_rules=(), fetched_at=0.0, api_requests=2)
    except MalformedAnswer as refused:
        assert refused.endpoint in ("GET /cluster/resources", "GET /cluster/status")
        return
    assert_usable(snapshot)
    entries = (resources if isinstance(resources, list) else []) + (status if isinstance(status, list) else [])
    skipped = sum("skipped entry" in w for w in snapshot.warnings)
    assert skipped <= len(entries)


RULE = {"rule": "r", "type": "node-affinity", "resources": "vm:100", "nodes": "pve1:2,pve2", "strict": 1}


@settings(max_examples=100, deadline=None)
@given(
    rules=st.one_of(st.lists(mutated(RULE), max_size=6), JSON),
    options=st.one_of(st.fixed_dictionaries({"crs": JSON}), JSON),
    config_nodes=st.one_of(st.lists(mutated({"node": "pve1", "quorum_votes": 1}), max_size=4), JSON),
)
def test_slow_data_answers_are_refused_or_parsed_with_warnings(rules: Any, options: Any, config_nodes: Any) -> None:
    warnings = Warnings()
    try:
        parsed = parse_ha_rules(rules, warnings)
    except MalformedAnswer as refused:
        assert refused.endpoint == "GET /cluster/ha/rules" and not isinstance(rules, list)
    else:
        for rule in parsed:
            assert isinstance(rule.rule, str) and isinstance(rule.type, str)
            assert all(NODE_NAME.fullmatch(node) and type(priority) is int for node, priority in rule.nodes)
    try:
        crs = parse_crs(options, warnings)
    except MalformedAnswer:
        assert not isinstance(options, dict)
    else:
        assert isinstance(crs.ha, str) and isinstance(crs.ha_auto_rebalance, bool)
    try:
        votes = parse_config_nodes(config_nodes, warnings)
    except MalformedAnswer:
        assert not isinstance(config_nodes, list)
    else:
        assert all(NODE_NAME.fullmatch(name) and type(count) is int for name, count in votes.items())
