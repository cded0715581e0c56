"""Rules store figures (JSON on stdout): write transactions per second, RuleSet read time at scale,
export/import of a large rule set. Run: ``python tests/bench/store_rules.py``."""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pvetop.store import open_store  # noqa: E402

PINS, LOCKS, WRITES, READS = 1000, 100, 300, 50


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = open_store(str(Path(tmp) / "bench.sqlite"))
        started = time.perf_counter()
        for i in range(WRITES):
            store.pin_guest("bench", 100 + i, f"g{i}", [f"pve{i % 8}"])
        write_s = time.perf_counter() - started
        for i in range(WRITES, PINS):
            store.pin_guest("bench", 100 + i, f"g{i}", [f"pve{i % 8}", f"pve{(i + 1) % 8}"])
        for i in range(LOCKS):
            store.lock_guest("bench", 5000 + i, f"l{i}")
        started = time.perf_counter()
        for _ in range(READS):
            ruleset = store.ruleset("bench")
        read_ms = (time.perf_counter() - started) / READS * 1000
        assert len(ruleset.pins) == PINS
        started = time.perf_counter()
        document = store.export("bench")
        export_ms = (time.perf_counter() - started) * 1000
        target = open_store(str(Path(tmp) / "target.sqlite"))
        started = time.perf_counter()
        target.import_rules(document)
        import_ms = (time.perf_counter() - started) * 1000
        assert target.rules("bench") == store.rules("bench")
        print(
            json.dumps(
                {
                    "pin_write_transactions_per_s": round(WRITES / write_s, 1),
                    "ruleset_read_ms_1000_pins_100_locks": round(read_ms, 2),
                    "export_ms_1100_rules": round(export_ms, 1),
                    "import_ms_1100_rules": round(import_ms, 1),
                },
                indent=2,
            )
        )
        store.close()
        target.close()


if __name__ == "__main__":
    main()
