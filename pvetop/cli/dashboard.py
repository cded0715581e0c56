"""The default command: the live dashboard, against a cluster or a built-in simulated one.

``pvetop --demo [SCENARIO]`` starts the simulator in this process on a free loopback port and
talks to it through the same client as a real cluster, so the demo exercises the real path.

One clock: the demo's simulator runs ``DEMO_SPEED`` times faster than real time, and everything
that reads the time — snapshots, the app, its workers (balancer cooldowns, power windows,
migration and task durations), the rules store (pins, the journal) and the lease — reads the
simulator's clock, so task start times, pins, journal entries and durations all agree. Only the
refresh pacing (the interval, the data's age, a retry countdown) is in real seconds: it is the
terminal's, and the app converts with ``clock_speed``.
"""

from __future__ import annotations

import argparse
import contextlib
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any

from pvetop.cli import common
from pvetop.errors import UsageError
from pvetop.sim.scenarios import list_scenarios

if TYPE_CHECKING:
    from pvetop.pve import PveClient
    from pvetop.sim.clock import SimClock
    from pvetop.ui.app import PvetopApp
    from pvetop.ui.prefs import Prefs

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
def _demo_source(scenario: str, read_only: str | None) -> Iterator[tuple[PveClient, SimClock]]:
    from pvetop.config import settings_from_sim_info
    from pvetop.pve import PveClient
    from pvetop.sim.runner import start_sim

    with start_sim(scenario=scenario, seed=DEMO_SEED, port=0, speed=DEMO_SPEED) as sim:
        settings = replace(settings_from_sim_info(sim.info), read_only=read_only)
        # snapshots stamped with simulated time, so rates are per simulated second like the counters
        client = PveClient.connect(settings, clock=sim.cluster.clock.now)
        try:
            yield client, sim.cluster.clock
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


def dashboard_app(
    source: Any,
    store: Any,
    *,
    clock: Callable[[], float] = time.time,
    clock_speed: float = 1.0,
    read_only: bool = False,
    interval: float = DEFAULT_INTERVAL,
    prefs: Prefs | None = None,
    keymap: Mapping[str, str] | None = None,
    demo: bool = False,
) -> PvetopApp:
    """The dashboard with every room installed, reading one clock (see the module's docstring)."""
    from pvetop.ui.acting import install_acting
    from pvetop.ui.app import PvetopApp  # Textual loads only when the dashboard opens
    from pvetop.ui.balancer import install_balancer
    from pvetop.ui.keys import binding_ids, check_keymap
    from pvetop.ui.power import install_power
    from pvetop.ui.rules import install_rules

    app = PvetopApp(
        source,
        read_only=read_only,
        interval=interval,
        clock=clock,
        clock_speed=clock_speed,
        insecure_warning=getattr(source, "insecure_warning", None) or "",
        prefs=prefs,
    )
    app.embedded_cluster = demo
    if demo:
        app.header_notes["clock"] = f"simulated time ×{clock_speed:g}"
    app.use_keymap(keymap or {})
    install_rules(app, store)
    install_balancer(app, store)
    install_power(app, store)
    install_acting(app, store)
    check_keymap(keymap or {}, binding_ids(app.added_bindings))
    return app


def run(args: argparse.Namespace) -> int:
    _check_options(args)
    from pvetop.cli.rules import dashboard_store
    from pvetop.config import load_config_for
    from pvetop.ui.prefs import load_prefs, save_prefs

    config = load_config_for(args)  # a bad config file fails before anything starts
    profile = f"demo:{args.demo}" if args.demo else (common.option(args, "profile") or config.default_profile or "")
    prefs = load_prefs(profile)
    read_only = common.read_only(args)
    with contextlib.ExitStack() as stack:
        if args.demo:  # the store stamps pins and the journal with the simulator's clock
            source, sim_clock = stack.enter_context(_demo_source(args.demo, read_only))
            clock, speed = sim_clock.now, sim_clock.speed
            store = stack.enter_context(dashboard_store(args, clock=clock))
        else:  # the store first, so a bad ``--db`` fails before connecting
            clock, speed = time.time, 1.0
            store = stack.enter_context(dashboard_store(args))
            source = stack.enter_context(_cluster_source(args))
        app = dashboard_app(
            source,
            store,
            clock=clock,
            clock_speed=speed,
            read_only=read_only is not None,
            interval=args.interval or prefs.interval or DEFAULT_INTERVAL,
            prefs=prefs,
            keymap=config.keys,
            demo=bool(args.demo),
        )
        app.save_prefs = partial(save_prefs, profile)
        theme = args.theme or prefs.theme
        if theme is not None and (args.theme is not None or theme in app.available_themes):
            app.theme = theme
        app.run()
    return app.return_code or 0
