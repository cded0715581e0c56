"""`pvetop sim`: run the simulated Proxmox VE cluster in the foreground until Ctrl-C.

Prints how to connect (and optionally writes it as JSON with ``--info-file``) so pvetop, ProxLB
or curl can be pointed at a cluster that needs no hardware.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from pvetop.errors import UsageError
from pvetop.sim.scenarios import list_scenarios

# pve-http-server AnyEvent.pm answers every 401 after 3 s (slows password guessing); the
# standalone simulator does too, the in-process one of tests and --demo does not
PVE_AUTH_FAILURE_DELAY = 3.0


def register(subparsers) -> None:
    """Adds ``sim`` to the top-level parser."""
    parser = subparsers.add_parser(
        "sim",
        help="run a simulated Proxmox VE cluster (HTTPS API + wake-on-LAN) in the foreground",
        description="Serve a simulated cluster on 127.0.0.1 speaking the PVE JSON API, until Ctrl-C.",
    )
    parser.add_argument(
        "--scenario",
        default="homelab",
        metavar="NAME|FILE.json",
        help=f"built-in scenario ({', '.join(list_scenarios())}; default homelab) or a scenario file",
    )
    parser.add_argument("--port", type=int, default=0, help="HTTPS port (default: any free port)")
    parser.add_argument("--wol-port", type=int, default=0, help="UDP wake-on-LAN port (default: any free port)")
    parser.add_argument("--speed", type=float, default=1.0, help="simulated seconds per real second (default 1)")
    parser.add_argument("--seed", type=int, default=1, help="seed for generated guests and load curves")
    parser.add_argument("--password", metavar="PASSWORD", help="root@pam password (default: random)")
    parser.add_argument("--info-file", metavar="PATH", help="write the connection details as JSON here")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from pvetop.sim.runner import INFO_KEYS, start_sim  # late: keeps `pvetop --help` fast

    if args.speed <= 0:
        raise UsageError(f"--speed must be positive, got {args.speed}")
    for name in ("port", "wol_port"):
        if not 0 <= getattr(args, name) <= 65535:
            raise UsageError(f"--{name.replace('_', '-')} must be between 0 and 65535")
    try:
        sim = start_sim(
            scenario=args.scenario,
            seed=args.seed,
            speed=args.speed,
            port=args.port,
            wol_port=args.wol_port,
            password=args.password,
            auth_failure_delay=PVE_AUTH_FAILURE_DELAY,
        )
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1: {exc.strerror or exc}") from exc
    stop = threading.Event()
    # Both signals stop the server explicitly: a process started with SIGINT ignored (a background
    # job, a pytest-xdist worker's child) never gets a KeyboardInterrupt from Ctrl-C.
    stoppers = (signal.SIGTERM, signal.SIGINT)
    previous = {signum: signal.signal(signum, lambda *_: stop.set()) for signum in stoppers}
    try:
        info = sim.info
        if args.info_file:
            path = Path(args.info_file)
            try:
                write_private(path, json.dumps({key: info[key] for key in INFO_KEYS}, indent=2) + "\n")
            except OSError as exc:
                raise UsageError(f"cannot write --info-file {path}: {exc.strerror or exc}") from exc
        print(describe(sim, args), flush=True)
        while not stop.wait(0.5):
            pass
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        sim.stop()
    print("simulator stopped", file=sys.stderr)
    return 0


def write_private(path: Path, text: str) -> None:
    """Writes a file only its owner can read (the info file holds the root password and a token)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        os.fchmod(handle.fileno(), 0o600)  # an existing file keeps its mode through O_CREAT
        handle.write(text)


def describe(sim, args: argparse.Namespace) -> str:
    info = sim.info
    readonly = sim.readonly_info
    cluster = sim.cluster
    guests = len(cluster.guests)
    hosts = ",".join(f"{e['host']}:{e['port']}" for e in info["endpoints"])
    return "\n".join(
        [
            f"pvetop sim: scenario {cluster.scenario.name!r} ({len(cluster.nodes)} nodes, {guests} guests), "
            f"seed {args.seed}, speed x{args.speed:g}",
            f"  API          {sim.url}",
            f"  user         {info['user']}  password {info['password']}",
            f"  token        {info['user']}!{info['token_name']} = {info['token_value']}",
            f"  read-only    {readonly['user']}!{readonly['token_name']} = {readonly['token_value']}",
            f"  CA file      {info['ca_file']}",
            f"  fingerprint  {info['fingerprint']}",
            f"  wake-on-LAN  udp://127.0.0.1:{info['wol_port']}",
            f"  control      {info['control_url']}/state"
            "  (POST /sim/step, /sim/faults, /sim/speed, /sim/nodes/NODE/crash)",
            "  endpoints    " + ", ".join(f"{e['node']} {e['host']}:{e['port']}" for e in info["endpoints"]),
            "connect with the environment (a secret on a command line is visible to every local user), "
            "naming every node's endpoint so pvetop fails over when one goes down:",
            *(f"  export {line}" for line in environment_lines(info, hosts)),
            "  pvetop",
            "or, the token secret still from the environment, with options:",
            f"  pvetop --host {hosts} --user {info['user']} --token-name {info['token_name']} "
            f"--verify-ssl {info['ca_file']}",
            "Ctrl-C stops the simulator.",
        ]
    )


def environment_lines(info: dict, hosts: str) -> list[str]:
    """``PVETOP_*=value`` for the simulator's connection (the --info-file keys under pvetop's names)."""
    values = {
        "PVETOP_HOST": hosts,
        "PVETOP_USER": info["user"],
        "PVETOP_TOKEN_NAME": info["token_name"],
        "PVETOP_TOKEN_VALUE": info["token_value"],
        "PVETOP_VERIFY_SSL": info["ca_file"],
    }
    return [f"{name}={shlex.quote(str(value))}" for name, value in values.items()]
