"""Regenerate the README's screenshots from the demo: ``python scripts/screenshots.py [DIR]``.

Runs the dashboard headless against the simulated homelab (seeded, its clock moved by hand, so
the pictures only change when the code does) through the same client and rules panels as
``pvetop --demo``, and writes ``main.svg``, ``guest-detail.svg`` and ``node-detail.svg`` into
``DIR`` (default: the repository's ``screenshots/``). A script, not part of the package: it
starts the simulator, opens a store and drives the UI, so it sits above every room.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from pvetop.config import settings_from_sim_info
from pvetop.pve import PveClient
from pvetop.sim.runner import start_sim
from pvetop.store import open_store
from pvetop.ui.app import PvetopApp
from pvetop.ui.detail import DetailScreen
from pvetop.ui.rules import install_rules

DEFAULT_DIR = Path(__file__).resolve().parent.parent / "screenshots"
SIZE = (140, 42)
SCENARIO = "homelab"
GUEST_SHOWN = "103"  # a busy VM with history worth looking at
SIM_MINUTES_BEFORE = 45  # so the detail panes have most of an hour of history


async def _settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()
    await pilot.pause()


def take(out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with (
        start_sim(scenario=SCENARIO, seed=1, port=0, manual_clock=True) as sim,
        PveClient.connect(settings_from_sim_info(sim.info), clock=sim.cluster.clock.now) as client,
        tempfile.TemporaryDirectory(prefix="pvetop-shots-") as tmp,
        open_store(str(Path(tmp) / "rules.sqlite")) as store,
    ):
        sim.cluster.step(SIM_MINUTES_BEFORE * 60)
        app = PvetopApp(client, interval=60)  # no poll of its own between the pictures
        install_rules(app, store)

        def save(name: str) -> None:
            written.append(Path(app.save_screenshot(name, path=str(out_dir))))

        async def auto_pilot(pilot) -> None:
            while app.latest is None:
                await pilot.pause(0.05)
            sim.cluster.step(2)  # a second snapshot, 2 s later: traffic rates
            await pilot.press("ctrl+r")
            await _settle(pilot)
            save("main.svg")
            app.guest_table.select_key(GUEST_SHOWN)
            await pilot.press("enter")
            await _settle(pilot)
            assert isinstance(app.screen, DetailScreen)
            save("guest-detail.svg")
            await pilot.press("escape")
            app.node_table.focus()
            await pilot.press("enter")
            await _settle(pilot)
            save("node-detail.svg")
            app.exit()

        app.run(headless=True, size=SIZE, auto_pilot=auto_pilot)
    return written


def main(argv: list[str]) -> int:
    out_dir = Path(argv[0]) if argv else DEFAULT_DIR
    for path in take(out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
