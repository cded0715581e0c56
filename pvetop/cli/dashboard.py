"""The default command: the live dashboard, against a cluster or a built-in simulated one.

``pvetop --demo [SCENARIO]`` starts the simulator in this process on a free loopback port and
talks to it through the same client as a real cluster, so the demo exercises the real path.
"""

from __future__ import annotations

import argparse
import contextlib
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING

from pvetop.cli import common
from pvetop.errors import UsageError
from pvetop.sim.scenarios import list_scenarios

if TYPE_CHECKING:
    from pvetop.pve import PveClient

DEMO_SPEED = 10.0  # simulated seconds per real second: things visibly move, nothing races
DEMO_SEED = 1
DEFAULT_INTERVAL = 2.0


def add_dashboard_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("dashboard")
    group.add_argument(
        "--demo",
        nargs="?",
        const="homelab",
        metavar="SCENARIO",
        help=f"run against a built-in simulated cluster ({', '.join(list_scenarios())}; default homelab)",
    )
    group.add_argument(
        "--interval",
        metavar="SECONDS",
        type=float,
        help="refresh interval (default: as last time with this profile, else 2; + and - change it while running)",
    )
    group.add_argument("--theme", metavar="NAME", help="Textual theme, e.g. textual-dark, nord, gruvbox")


def _check_options(args: argparse.Namespace) -> None:
    """Bad options fail before anything starts (a simulator, a connection)."""
    if args.interval is not None and not 0.2 <= args.interval <= 3600:
        raise UsageError(f"--interval {args.interval:g}: give between 0.2 and 3600 seconds")
    if args.theme is not None:
        from pvetop.ui.themes import check_theme

        check_theme(args.theme)


@contextlib.contextmanager
def _demo_source(scenario: str, read_only: str | None) -> Iterator[PveClient]:
    from pvetop.config import settings_from_sim_info
    from pvetop.pve import PveClient
    from pvetop.sim.runner import start_sim

    with start_sim(scenario=scenario, seed=DEMO_SEED, port=0, speed=DEMO_SPEED) as sim:
        settings = replace(settings_from_sim_info(sim.info), read_only=read_only)
        # snapshots stamped with simulated time, so rates are per simulated second like the counters
        client = PveClient.connect(settings, clock=sim.cluster.clock.now)
        try:
            yield client
        finally:
            client.close()


@contextlib.contextmanager
def _cluster_source(args: argparse.Namespace) -> Iterator[PveClient]:
    from pvetop.config import resolve_connection
    from pvetop.pve import PveClient

    client = PveClient.connect(resolve_connection(args))
    try:
        yield client
    finally:
        client.close()


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    from pvetop.cli.rules import dashboard_store
    from pvetop.config import load_config_for
    from pvetop.ui.acting import install_acting
    from pvetop.ui.app import PvetopApp  # Textual loads only when the dashboard opens
    from pvetop.ui.balancer import install_balancer
    from pvetop.ui.keys import binding_ids, check_keymap
    from pvetop.ui.power import install_power
    from pvetop.ui.prefs import load_prefs, save_prefs
    from pvetop.ui.rules import install_rules

    config = load_config_for(args)  # a bad config file fails before anything starts
    keymap = config.keys
    profile = f"demo:{args.demo}" if args.demo else (common.option(args, "profile") or config.default_profile or "")
    prefs = load_prefs(profile)
    read_only = common.read_only(args)
    source_cm = _demo_source(args.demo, read_only) if args.demo else _cluster_source(args)
    with dashboard_store(args) as store, source_cm as source:
        app = PvetopApp(
            source,
            read_only=read_only is not None,
            interval=args.interval or prefs.interval or DEFAULT_INTERVAL,
            insecure_warning=getattr(source, "insecure_warning", None) or "",
            prefs=prefs,
        )
        app.save_prefs = partial(save_prefs, profile)
        app.embedded_cluster = bool(args.demo)
        app.use_keymap(keymap)
        install_rules(app, store)
        install_balancer(app, store)
        install_power(app, store)
        install_acting(app, store)
        check_keymap(keymap, binding_ids(app.added_bindings))
        theme = args.theme or prefs.theme
        if theme is not None and (args.theme is not None or theme in app.available_themes):
            app.theme = theme
        app.run()
    return app.return_code or 0
