"""Text from the cluster or the store never drives the terminal.

A guest name, tag, description, node or cluster name, PVE error text or stored rule that holds
ESC sequences (window title, clipboard write, screen clear, leaving the alternate screen) or a
C1 CSI is shown with those characters made visible, in the CLI's output and in what the
dashboard draws; Rich markup in such text is shown, not parsed (``[/]`` used to crash the header).
"""

from __future__ import annotations

import re
from dataclasses import replace

from pvetop.cli import main, status
from pvetop.errors import ApiError, ConnectionFailed
from pvetop.sim.errors import PveApiError
from pvetop.store import open_store
from pvetop.text import visible
from pvetop.ui.app import PvetopApp
from pvetop.ui.source import MemorySource
from tests.clirun import connection, run, run_driven
from tests.ui.fixtures import fixed_clock, small_cluster
from tests.ui.pilot import settle, wait_for_data

TITLE = "\x1b]0;pwned\x07"  # OSC 0: set the window title
CLIPBOARD = "\x1b]52;c;cm0gLXJmIH4K\x1b\\"  # OSC 52: write the clipboard
CLEAR = "\x1b[2J\x1b[H"  # clear the screen, cursor home
LEAVE_ALT = "\x1b[?1049l"  # leave the alternate screen
C1_CSI = "\x9b2J"  # one-byte CSI (C1): clear the screen on terminals that honour C1
HOSTILE = TITLE + CLIPBOARD + CLEAR + LEAVE_ALT + C1_CSI + "[/][bold]"
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # what may never reach the terminal
C = "homelab"


def assert_visible_only(text: str) -> None:
    found = RAW_CONTROL.findall(text)
    assert not found, f"raw control characters reached the terminal: {found!r}"


def test_visible_shows_every_control_and_keeps_the_rest():
    assert visible(TITLE) == "␛]0;pwned␇"
    assert visible(C1_CSI) == "\\x9b2J"
    assert visible("a\nb\tc") == "a␊b␉c"
    assert visible("a\nb\tc", multiline=True) == "a\nb\tc"
    assert visible("gp\u202eexe.") == "gp\\u202eexe."  # right-to-left override shown, not obeyed
    assert visible("nextcloud · 🚀 [x]") == "nextcloud · 🚀 [x]"
    assert_visible_only(visible(HOSTILE))


# ------------------------------------------------------------------------------------------- CLI


def test_status_shows_a_hostile_cluster_name_visibly(sim, db, capsys):
    with sim.cluster.lock:
        sim.cluster.cluster_name = "lab" + HOSTILE
    code, out, err = run_driven(sim, capsys, ["status", *connection(sim, db)])
    assert code == 0, err
    assert_visible_only(out + err)
    assert "cluster lab␛]0;pwned␇" in out


def test_pins_and_locks_list_show_stored_names_visibly(db, capsys):
    with open_store(db) as store:
        store.pin_guest(C, 100, "web" + HOSTILE, ["pve1"], note=HOSTILE, who="eve" + TITLE)
        store.lock_guest(C, 101, "db" + HOSTILE, reason=CLEAR)
    for listing in (["pins", "list"], ["locks", "list"]):
        code = main([*listing, "--cluster", C, f"--db={db}"])
        out, err = capsys.readouterr()
        assert code == 0, err
        assert_visible_only(out + err)
        assert "web␛]0;pwned␇" in out or "db␛]0;pwned␇" in out


def test_pve_errors_values_are_shown_visibly(sim, db, capsys, monkeypatch):
    def refuse(*_args, **_kwargs):  # the reason phrase travels in the status line: the sim's server
        raise PveApiError(400, "Parameter verification failed.", {"target": "bad" + HOSTILE})  # refuses ESC there

    monkeypatch.setattr(sim.cluster, "migrate", refuse)
    code, out, err = run(sim, db, capsys, "migrate", "103", "pve-big")
    assert code == 4
    assert_visible_only(out + err)
    assert "target: bad␛]0;pwned␇" in err


def test_any_error_text_is_printed_visibly(db, capsys, monkeypatch):
    """Every error line goes through one stream: a reason phrase from a hostile server included."""

    def fail(_args):
        raise ApiError(500, "GET /cluster/resources: 500 " + HOSTILE)

    monkeypatch.setattr(status, "run", fail)
    code = main(["status"])
    out, err = capsys.readouterr()
    assert code == 4
    assert_visible_only(out + err)
    assert err.startswith("pvetop: error: GET /cluster/resources: 500 ␛]0;pwned␇")


def test_progress_lines_show_a_hostile_guest_name_visibly(sim, db, capsys):
    with sim.cluster.lock:
        sim.cluster.guests[103].name = "nextcloud" + HOSTILE
    code, out, err = run(sim, db, capsys, "migrate", "103", "pve-big", "--wait")
    assert code == 0, err
    assert_visible_only(out + err)
    assert "103 (nextcloud␛]0;pwned␇" in out


# ------------------------------------------------------------------------------------------- TUI


def hostile_cluster():
    snapshot = small_cluster()
    guests = tuple(
        replace(guest, name=guest.name + HOSTILE, tags=(*guest.tags, "t" + CLIPBOARD), lock=LEAVE_ALT)
        for guest in snapshot.guests
    )
    return replace(snapshot, cluster_name="lab" + HOSTILE, guests=guests)


async def test_the_dashboard_draws_hostile_names_visibly():
    snapshot = hostile_cluster()
    first = snapshot.guests[0]
    source = MemorySource(snapshot, configs={f"guest/{first.vmid}": {"description": "notes" + HOSTILE + "\nmore"}})
    app = PvetopApp(source, clock=fixed_clock, interval=60)
    async with app.run_test(size=(160, 50)) as pilot:
        await wait_for_data(pilot)
        screen = app.export_screenshot()
        assert_visible_only(screen)
        assert "lab␛]0;pwned␇" in screen.replace("&#160;", " ")
        app.guest_table.focus()
        await pilot.press("enter")  # the guest's detail pane: fields and config (description)
        await settle(pilot)
        detail = app.export_screenshot()
        assert_visible_only(detail)
        assert "notes␛]0;pwned␇" in detail.replace("&#160;", " ")


async def test_an_error_text_with_markup_before_the_first_data_does_not_crash_the_header():
    source = MemorySource(small_cluster())
    source.fail_with = ConnectionFailed("pve1: [/] refused" + TITLE)
    app = PvetopApp(source, clock=fixed_clock, interval=60)
    async with app.run_test(size=(120, 30)) as pilot:
        await settle(pilot)
        await settle(pilot)
        header = str(app.header.render())
        assert "cannot reach the cluster: pve1: [/] refused␛]0;pwned␇" in header
        assert_visible_only(app.export_screenshot())
    assert app.return_code in (None, 0)
