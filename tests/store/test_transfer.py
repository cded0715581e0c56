"""Export then import gives the same rules; a malformed file is refused whole, changing nothing."""

import copy
import json

import pytest

from pvetop.store import StoreError, open_store

C = "homelab"


def fill(store):
    store.pin_guest(C, 100, "web", ["pve1", "pve2"], note="near storage", who="alice")
    store.pin_guest("other", 100, "mail", ["n1"])
    store.lock_guest(C, 101, "db", reason="licence", who="bob")
    store.reserve_node(C, "pve3", reason="lab")
    store.set_maintenance(C, "pve2", reason="disk")
    store.set_node_power(C, "big", wol_mac="aa:bb:cc:dd:ee:01", allow_power_off=True, boot_timeout=600)
    store.set_setting(C, "balancer.mode", "auto")
    store.set_setting(C, "power.band", {"low": 0.45, "high": 0.81})


def test_export_then_import_into_an_empty_store_gives_the_same_rules(store, new_db):
    fill(store)
    document = json.loads(json.dumps(store.export()))  # through JSON text, as the CLI does
    assert "journal" not in json.dumps(document)
    with open_store(new_db("empty")) as target:
        counts = target.import_rules(document, source="rules.json")
        assert counts[C] == {"pins": 1, "locks": 1, "reservations": 1, "maintenance": 1, "node_power": 1, "settings": 2}
        for name in ("homelab", "other"):
            assert target.rules(name) == store.rules(name)
            assert target.settings(name) == store.settings(name)
        assert target.ruleset(C) == store.ruleset(C)
        # the import itself is journaled, once per cluster
        assert [(e.action, e.params["source"]) for e in target.recent_journal(C)] == [("import", "rules.json")]


def test_export_of_one_cluster(store):
    fill(store)
    assert list(store.export(C)["clusters"]) == [C]


def test_import_replaces_entries_with_the_same_key_and_keeps_others(store):
    fill(store)
    document = store.export(C)
    document["clusters"][C]["pins"][0]["nodes"] = ["pve3"]
    store.pin_guest(C, 105, "extra", ["pve1"])
    store.import_rules(document)
    assert store.pin(C, 100).nodes == {"pve3"}
    assert store.pin(C, 105) is not None


def broken(mutate):
    def apply(document):
        document = copy.deepcopy(document)
        mutate(document)
        return document

    return apply


def set_in(path, value):
    def mutate(document):
        target = document
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return mutate


CASES = [
    (broken(lambda d: d.pop("format")), r"\(top\): not a pvetop rules export"),
    (broken(set_in(["version"], 99)), "version: export format version 99 is newer"),
    (broken(set_in(["clusters"], [])), "clusters: expected an object, found a list"),
    (broken(set_in(["clusters", C, "pins", 0, "vmid"], "web")), r"clusters.homelab.pins\[0\].vmid: vmid 'web'"),
    (broken(set_in(["clusters", C, "pins", 0, "nodes"], [])), r"pins\[0\].nodes: a pin needs at least one node"),
    (broken(lambda d: d["clusters"][C]["pins"][0].pop("nodes")), r"pins\[0\].nodes: missing"),
    (broken(set_in(["clusters", C, "locks"], {"101": {}})), "clusters.homelab.locks: expected a list"),
    (broken(set_in(["clusters", C, "reservations", 0, "node"], "no such node!")), "not a valid node name"),
    (broken(set_in(["clusters", C, "node_power", 0, "wol_mac"], "zz")), "not a MAC address"),
    (broken(set_in(["clusters", C, "node_power", 0, "allow_power_off"], "yes")), "expected true or false"),
    (broken(set_in(["clusters", C, "maintenance", 0, "since"], "yesterday")), "since: expected a number"),
    (broken(set_in(["clusters", C, "settings"], ["x"])), "settings: expected an object"),
    (
        broken(lambda d: d["clusters"][C]["pins"].append(dict(d["clusters"][C]["pins"][0]))),
        "pin of guest 100 appears twice",
    ),
    (lambda d: "not an object", r"\(top\): expected an object, found a string"),
]


@pytest.mark.parametrize("make_bad, message", CASES)
def test_a_malformed_import_changes_nothing(store, new_db, make_bad, message):
    fill(store)
    good = store.export()
    # the target has rules of its own that a failed import must leave exactly as they were
    with open_store(new_db("target")) as target:
        target.pin_guest(C, 200, "keep", ["pve1"])
        before = (target.rules(C), target.settings(C), target.recent_journal(None))
        bad = make_bad(good)
        # valid entries come before the bad one: nothing of them may be written either
        with pytest.raises(StoreError, match=message) as caught:
            target.import_rules(bad, source="bad.json")
        assert str(caught.value).startswith("bad.json: ") and "nothing was imported" in str(caught.value)
        assert (target.rules(C), target.settings(C), target.recent_journal(None)) == before
