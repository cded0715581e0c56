"""Running ``pvetop`` commands against a simulator: its connection options, and a command run in a
thread while the test moves simulated time (so tasks the command follows finish)."""

from __future__ import annotations

import threading

from pvetop.cli import main
from tests.engine.simdrive import drive_thread


def connection(sim, db: str | None = None) -> list[str]:
    """The options that connect to ``sim`` (and use the rules store ``db``)."""
    info = sim.info
    options = [
        f"--host={info['host']}:{info['port']}",
        f"--user={info['user']}",
        f"--token-name={info['token_name']}",
        f"--token-value={info['token_value']}",
        f"--verify-ssl={info['ca_file']}",
    ]
    return options if db is None else [*options, f"--db={db}"]


def run_driven(sim, capsys, argv: list[str]) -> tuple[int, str, str]:
    """Runs ``pvetop ARGV`` in a thread while simulated time moves; returns (code, stdout, stderr)."""
    result = {}
    thread = threading.Thread(target=lambda: result.setdefault("code", main(argv)))
    thread.start()
    drive_thread(sim, thread)
    out, err = capsys.readouterr()
    return result["code"], out, err


def run(sim, db, capsys, *argv: str) -> tuple[int, str, str]:
    """``pvetop COMMAND ...`` connected to ``sim``, polling its tasks every 10 ms."""
    command, *rest = argv
    return run_driven(sim, capsys, [command, *rest, "--poll", "0.01", *connection(sim, db)])
