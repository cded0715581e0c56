"""Pure pieces of the dashboard: cell text, the `/` filter language, poll timing."""

from __future__ import annotations

import pytest

from pvetop.model import Guest
from pvetop.ui import formatting as fmt
from pvetop.ui.filtering import GuestFilter
from pvetop.ui.polling import INTERVAL_STEPS, MAX_BACKOFF_SECONDS, backoff_delay, next_interval


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0B"),
        (1023, "1023B"),
        (1536, "1.5K"),
        (3 * 1024**3, "3.0G"),
        (512 * 1024**3, "512G"),
        (2 * 1024**5, "2.0P"),
    ],
)
def test_human_bytes(value, text):
    assert fmt.human_bytes(value) == text


def test_used_of_rate_uptime_age_and_bar():
    assert fmt.used_of(1024**3, 4 * 1024**3) == "1.0G/4.0G"
    assert fmt.used_of(0, 0) == "-"
    assert fmt.human_rate(None) == "-" and fmt.human_rate(2048) == "2.0K/s"
    # edge 13: one uptime format in a column, short or long
    assert fmt.uptime(0) == "-" and fmt.uptime(3725) == "0d 01:02" and fmt.uptime(86400 * 3 + 60) == "3d 00:01"
    assert fmt.age(0.42) == "0.4s" and fmt.age(75) == "1m15s" and fmt.age(7300) == "2h01m"
    assert fmt.bar(0.5, 4) == "██  " and fmt.bar(2.0, 3) == "███" and fmt.bar(-1, 2) == "  "
    assert fmt.bar(1 / 16, 2) == "▏ "


GUESTS = [
    Guest(100, "qemu", "pve1", "running", name="web-1", tags=("prod", "web")),
    Guest(101, "lxc", "pve2", "stopped", name="db", tags=("prod",)),
    Guest(1000, "qemu", "pve2", "running", name="web.test"),
]


def selected(query: str) -> list[int]:
    parsed = GuestFilter.parse(query)
    return [g.vmid for g in GUESTS if parsed.matches(g)]


@pytest.mark.parametrize(
    ("query", "vmids"),
    [
        ("", [100, 101, 1000]),
        ("WEB", [100, 1000]),  # any field, case-insensitive
        ("100", [100, 1000]),  # vmid text
        ("vmid:^100$", [100]),
        ("^db$", [101]),  # a regular expression
        ("web.t", [1000]),
        ("web-1 prod", [100]),  # all terms must match
        ("tag:prod status:stopped", [101]),
        ("node:pve2 type:ct", [101]),
        ("type:vm", [100, 1000]),
        ("[unclosed", []),  # not a valid expression: matched literally, no error
        ("nosuchfield:x", []),  # an unknown field name is just text
    ],
)
def test_filter_language(query, vmids):
    assert selected(query) == vmids


def test_backoff_doubles_up_to_a_cap_and_interval_steps():
    assert backoff_delay(2.0, 0) == 2.0
    assert [backoff_delay(2.0, n) for n in (1, 2, 3)] == [4.0, 8.0, 16.0]
    assert backoff_delay(2.0, 50) == MAX_BACKOFF_SECONDS
    assert backoff_delay(120.0, 3) == 120.0  # never shorter than the interval itself
    assert next_interval(2.0, 1) == 3.0 and next_interval(2.0, -1) == 1.0
    assert next_interval(INTERVAL_STEPS[-1], 1) == INTERVAL_STEPS[-1]
    assert next_interval(INTERVAL_STEPS[0], -1) == INTERVAL_STEPS[0]
    assert next_interval(2.5, -1) == 2.0  # an interval from --interval snaps to the steps


def test_history_series_reads_guest_and_node_rrddata_and_skips_bad_points():
    from pvetop.ui.detail import history_series

    guest = [
        {"time": 1, "cpu": 0.5, "mem": 1, "maxmem": 4, "netin": 10, "netout": 5},
        {"time": 2, "cpu": None, "mem": "x", "maxmem": 4, "netin": "20.5", "netout": 6},
    ]
    cpu, mem, netin, netout = history_series(guest)
    assert cpu.points == [50.0] and mem.points == [25.0] and netin.points == [10.0, 20.5]
    assert cpu.show(12.34) == "12.3%" and netout.show(2048) == "2.0K/s"
    node = [{"time": 1, "cpu": 0.1, "memused": 8, "memtotal": 32, "netin": 1, "netout": 2}]
    assert history_series(node)[1].points == [25.0]
    assert all(series.points == [] for series in history_series([{"time": 1}]))


def test_fit_cell_pads_justifies_and_cuts_with_an_ellipsis():
    from pvetop.ui.table import fit_cell

    assert fit_cell("web", 7, 1, "left") == " web   "
    assert fit_cell("42%", 7, 1, "right") == "   42% "
    assert fit_cell("debian-13-template", 10, 1, "left") == " debian-… "
    assert fit_cell("日本語ホスト", 8, 1, "left") == " 日本 … "  # wide characters count double


def test_only_capacities_are_cached():
    """Used amounts and rates change at every poll: only capacities, which repeat, are cached."""
    fmt.human_size.cache_clear()
    for used in range(1, 100):
        assert fmt.used_of(used * 1024**2, 4 * 1024**3) == f"{fmt.human_bytes(used * 1024**2)}/4.0G"
    assert fmt.human_size.cache_info().currsize == 1 and fmt.human_size.cache_info().hits == 98
