"""The long soak: ``python tests/soak/run.py --hours N [--scenario smb|homelab] [--seed S]``.

Runs the daemon's balancer and power workers in ``auto`` against the simulator for N simulated
hours under the fault schedule of ``tests.soak.soak``, with the dashboard headless beside them,
and prints the figures; exits 1 when an invariant failed.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

from tests.soak.soak import Soak  # noqa: E402 (after the path is set)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="soak", description=__doc__.splitlines()[0])
    parser.add_argument("--hours", type=float, default=24.0, help="simulated hours (default 24)")
    parser.add_argument("--scenario", choices=("homelab", "smb"), default="homelab")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="print the daemon's log lines")
    parser.add_argument("--progress", type=float, default=0.0, help="print the figures every N simulated hours")
    parser.add_argument("--no-dashboard", action="store_true", help="without the headless dashboard beside the daemon")
    args = parser.parse_args(argv)
    if args.hours <= 0:
        parser.error("--hours must be above 0")
    soak = Soak(
        args.scenario,
        seed=args.seed,
        say=print if args.verbose else None,
        dashboard=not args.no_dashboard,
        progress_every=args.progress,
        show=lambda text: print(text, flush=True),
    )
    figures = asyncio.run(soak.run(args.hours))
    print(f"soak {args.scenario} seed {args.seed}")
    print(figures.report())
    return 1 if figures.failed else 0


if __name__ == "__main__":
    sys.exit(main())
