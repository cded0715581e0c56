"""Property tests of the balancer's planner on random clusters with random rules.

Each plan is replayed step by step and checked from the outside (not with the planner's own
checker): no rule broken, no node past the memory cap, every move lowers imbalance and leaves
the destination below the source's load, and planning again on the result plans nothing.
"""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pvetop.model import ClusterSnapshot
from pvetop.policy.balance import BalancerConfig, apply_plan, measure, plan_balance
from pvetop.policy.rules import RuleSet, parse_proxlb_tags
from tests.factories import GIB, make_guest, make_ha_rule, make_node, make_snapshot

NODE_SIZES = st.tuples(st.sampled_from([4, 8, 16, 32]), st.sampled_from([16, 32, 64, 128, 256]))
TAGS = ("plb_ignore_x", "plb_pin_n0", "plb_pin_n1", "plb_affinity_a", "plb_anti_affinity_b", "prod")


@st.composite
def clusters(draw) -> tuple[ClusterSnapshot, RuleSet, BalancerConfig]:
    count = draw(st.integers(2, 6))
    names = [f"n{i}" for i in range(count)]
    nodes = []
    for name in names:
        maxcpu, maxmem = draw(NODE_SIZES)
        offline = draw(st.integers(0, 9)) == 0
        nodes.append(
            make_node(
                name,
                maxcpu=0 if offline else maxcpu,
                maxmem=0 if offline else maxmem * GIB,
                mem=0 if offline else GIB,
                status="offline" if offline else "online",
            )
        )
    online = [node.name for node in nodes if node.online]
    guests = []
    for vmid in range(100, 100 + draw(st.integers(0, 24))):
        node = draw(st.sampled_from(names))
        up = node in online and draw(st.integers(0, 9)) > 0
        guests.append(
            make_guest(
                vmid,
                node,
                type=draw(st.sampled_from(["qemu", "qemu", "lxc"])),
                status="running" if up else ("unknown" if node not in online else "stopped"),
                mem=int(draw(st.floats(0.25, 12)) * GIB),
                maxmem=16 * GIB,
                maxcpu=draw(st.sampled_from([1, 2, 4, 8])),
                cpu=draw(st.floats(0, 1)),
                tags=tuple(draw(st.lists(st.sampled_from(TAGS), max_size=2, unique=True))),
                hastate="started" if draw(st.booleans()) else None,
                lock="backup" if draw(st.integers(0, 19)) == 0 else None,
            )
        )
    snap = make_snapshot(nodes, guests, derive_usage=True)
    vmids = [g.vmid for g in guests]
    sids = [g.sid for g in guests]
    ha_rules = []
    if sids and draw(st.booleans()):
        members = tuple(draw(st.lists(st.sampled_from(sids), min_size=1, max_size=3, unique=True)))
        chosen = draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True))
        ha_rules.append(
            make_ha_rule(
                "na",
                "node-affinity",
                members,
                nodes=tuple((name, draw(st.integers(1, 3))) for name in chosen),
                strict=draw(st.booleans()),
            )
        )
    for index in range(draw(st.integers(0, 2)) if len(sids) >= 2 else 0):
        pair = tuple(draw(st.lists(st.sampled_from(sids), min_size=2, max_size=2, unique=True)))
        ha_rules.append(
            make_ha_rule(
                f"ra{index}", "resource-affinity", pair, affinity=draw(st.sampled_from(["positive", "negative"]))
            )
        )
    snap = make_snapshot(nodes, guests, ha_rules=tuple(ha_rules), derive_usage=True)
    pins = {}
    for vmid in draw(st.lists(st.sampled_from(vmids), max_size=4, unique=True)) if vmids else []:
        pins[vmid] = frozenset(draw(st.lists(st.sampled_from(names), min_size=1, max_size=3, unique=True)))
    rules = RuleSet(
        pins=pins,
        locks=frozenset(draw(st.lists(st.sampled_from(vmids), max_size=3, unique=True))) if vmids else frozenset(),
        reserved=frozenset(draw(st.lists(st.sampled_from(names), max_size=1))),
        maintenance=frozenset(draw(st.lists(st.sampled_from(names), max_size=1))),
    )
    config = BalancerConfig(
        restart_containers=draw(st.booleans()),
        memory_cap=draw(st.sampled_from([0.7, 0.8, 0.9])),
        threshold=draw(st.sampled_from([0.05, 0.25])),
    )
    return snap, rules, config


def _ha_allowed(snap: ClusterSnapshot, sid: str) -> set[str] | None:
    online = {node.name for node in snap.online_nodes}
    for rule in snap.ha_rules:
        if rule.type == "node-affinity" and sid in rule.resources:
            up = [(name, prio) for name, prio in rule.nodes if name in online]
            if not up:
                return set() if rule.strict else None
            top = max(prio for _name, prio in up)
            return {name for name, prio in up if prio == top}
    return None


def _grouped(snap: ClusterSnapshot, vmid: int, *, together: bool) -> set[int]:
    """Guests that must share a node with ``vmid`` (``together``: HA positive affinity, ProxLB
    affinity) or must not (HA negative affinity, ProxLB anti-affinity)."""
    guest = snap.guest_by_vmid[vmid]
    by_sid = {g.sid: g.vmid for g in snap.guests}
    affinity = "positive" if together else "negative"
    found: set[int] = set()
    for rule in snap.ha_rules:
        if rule.type == "resource-affinity" and rule.affinity == affinity and guest.sid in rule.resources:
            found |= {by_sid[sid] for sid in rule.resources if sid in by_sid}

    def groups(tags: tuple[str, ...]) -> frozenset[str]:
        parsed = parse_proxlb_tags(tags)
        return frozenset(parsed.affinity if together else parsed.anti_affinity)

    mine = groups(guest.tags)
    found |= {other.vmid for other in snap.guests if mine & groups(other.tags)}
    found.discard(vmid)
    return found


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_no_plan_breaks_a_rule_or_a_cap_and_every_move_lowers_imbalance(case):
    snap, rules, config = case
    plan = plan_balance(snap, rules, config)
    state = snap
    online = {node.name for node in snap.online_nodes}
    # guests that must stay together move as one unit: consecutive steps with the same reason
    units: list[list] = []
    for step in plan.moves:
        if units and units[-1][0].move.reason == step.move.reason:
            units[-1].append(step)
        else:
            units.append([step])
    for unit in units:
        before = measure(state, rules, config)
        for step in unit:
            move = step.move
            guest = state.guest_by_vmid[move.vmid]
            tags = parse_proxlb_tags(guest.tags)
            assert guest.node == move.source and move.target != move.source
            assert move.target in online
            assert move.vmid not in rules.locks and guest.lock is None
            pinned = rules.pinned_to(move.vmid)
            assert pinned is None or move.target in pinned
            assert move.source not in rules.reserved | rules.maintenance
            assert move.target not in rules.reserved | rules.maintenance
            assert not tags.ignore and (not tags.pins or move.target in tags.pins)
            assert guest.type == "qemu" or config.restart_containers
            allowed = _ha_allowed(snap, guest.sid)
            assert allowed is None or move.target in allowed
            assert not any(
                state.guest_by_vmid[o].node == move.target for o in _grouped(snap, move.vmid, together=False)
            )
            state = apply_plan(state, [step])
            target = state.node_by_name[move.target]
            assert target.mem <= config.memory_cap * target.maxmem + 1
        after = measure(state, rules, config)
        last = unit[-1]
        assert after.imbalance < before.imbalance
        assert after.loads[last.move.target] < before.loads[last.move.source]
        assert abs(after.imbalance - last.imbalance_after) < 1e-6
    for step in plan.moves:
        partners = _grouped(snap, step.vmid, together=True)
        assert all(state.guest_by_vmid[p].node == state.guest_by_vmid[step.vmid].node for p in partners)
    if plan.moves:
        assert plan.after.imbalance <= plan.before.imbalance * (1 - config.min_cut) + 1e-9


@pytest.mark.parametrize("balancing", [False, True])
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(clusters())
def test_planning_again_on_the_result_plans_nothing(balancing, case):
    """No ping-pong: on the cluster the plan leaves behind (its guests cooling down), nothing to do,
    also while auto balances on below the threshold (``balancing``)."""
    snap, rules, config = case
    plan = plan_balance(snap, rules, config, now=0.0, balancing=balancing)
    # the guests just moved are in their cooldown when the balancer looks again
    cooling = {step.vmid: 1800.0 for step in plan.moves}
    again = plan_balance(apply_plan(snap, plan.moves), rules, config, now=0.0, cooldowns=cooling, balancing=balancing)
    assert again.moves == ()
