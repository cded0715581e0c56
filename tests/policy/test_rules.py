"""RuleSet keeps rules immutable and well-formed; ProxLB tags are read the way ProxLB reads them."""

import pytest

from pvetop.policy.rules import NO_PROXLB_TAGS, RuleSet, parse_proxlb_tags, proxlb_tags
from tests.factories import make_guest


def test_empty_ruleset_binds_nothing():
    rules = RuleSet.empty()
    assert rules.pinned_to(100) is None
    assert not rules.is_locked(100)
    assert rules.reserved == frozenset() and rules.maintenance == frozenset()
    assert rules.import_proxlb_tags is False


def test_iterables_become_frozensets_and_pins_are_read_only():
    rules = RuleSet(pins={100: ["pve1", "pve2"]}, locks=[101], reserved=("pve3",), maintenance={"pve4"})
    assert rules.pinned_to(100) == frozenset({"pve1", "pve2"})
    assert rules.locks == frozenset({101}) and rules.is_locked(101)
    assert rules.reserved == frozenset({"pve3"})
    assert rules.maintenance == frozenset({"pve4"})
    with pytest.raises(TypeError):
        rules.pins[102] = frozenset({"pve1"})  # type: ignore[index]


def test_rulesets_compare_by_value_and_hash():
    a = RuleSet(pins={100: {"pve1"}}, locks={1})
    b = RuleSet(pins={100: frozenset({"pve1"})}, locks=frozenset({1}))
    assert a == b
    assert hash(a) == hash(b)
    assert a != RuleSet(pins={100: {"pve2"}}, locks={1})


def test_a_pin_without_nodes_is_rejected():
    with pytest.raises(ValueError, match="pin of guest 100 names no node"):
        RuleSet(pins={100: set()})


def test_a_string_where_a_set_belongs_is_rejected():
    with pytest.raises(ValueError, match="not a string"):
        RuleSet(pins={100: "pve1"})
    with pytest.raises(ValueError, match="reserved: give a set"):
        RuleSet(reserved="pve1")


def test_proxlb_tags_are_parsed():
    tags = parse_proxlb_tags(
        ["plb_pin_pve1", "plb_pin_pve2", "plb_affinity_web", "plb_anti_affinity_ntp", "prod", "plb_ignore_dev"]
    )
    assert tags.pins == frozenset({"pve1", "pve2"})
    assert tags.affinity == frozenset({"web"})
    assert tags.anti_affinity == frozenset({"ntp"})
    assert tags.ignore


def test_plain_tags_are_no_proxlb_tags():
    assert parse_proxlb_tags(["prod", "web", "plb_pin_"]) is NO_PROXLB_TAGS
    assert not NO_PROXLB_TAGS.any


def test_proxlb_tags_only_count_when_importing_is_on():
    guest = make_guest(100, tags=("plb_ignore",))
    assert proxlb_tags(guest, RuleSet()) is NO_PROXLB_TAGS
    assert proxlb_tags(guest, RuleSet(import_proxlb_tags=True)).ignore
