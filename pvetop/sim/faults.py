"""Injected faults: what can go wrong between a client and the simulated API."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from pvetop.sim.errors import ScenarioError


@dataclass
class Faults:
    """Per-request faults (latency, 500s, dropped connections), failing migrations, outages,
    magic packets lost on the way (``wol_drop_rate``).

    ``migration_failure_rate`` fails a migration at a random point of its transfer (disks, then
    memory); ``ram_failure_rate`` fails a live migration while its memory is being copied (the
    VM keeps running on its source). ``lost_answer_rate`` is the share of migrate POSTs that the
    cluster carries out but whose answer never comes back (the client times out).
    ``ram_failures`` and ``lost_answers`` are counts: the next N live migrations fail in their RAM
    phase, the next N migrate POSTs lose their answer, whatever the rates (a fault that must
    strike once it is set, however few moves fall while it is).

    ``outage_until`` is a simulated time before which every /api2 request has its connection
    dropped; setting ``outage_seconds`` through the control API starts such a window.
    """

    latency_ms: float = 0.0
    error_rate: float = 0.0
    drop_rate: float = 0.0
    migration_failure_rate: float = 0.0
    wol_drop_rate: float = 0.0
    ram_failure_rate: float = 0.0
    lost_answer_rate: float = 0.0
    ram_failures: float = 0.0
    lost_answers: float = 0.0
    outage_until: float = 0.0

    RATES = (
        "error_rate",
        "drop_rate",
        "migration_failure_rate",
        "wol_drop_rate",
        "ram_failure_rate",
        "lost_answer_rate",
    )

    def update(self, values: dict, now: float) -> None:
        """Applies a partial update; ``outage_seconds`` opens an outage window from ``now``."""
        known = {f.name for f in fields(self)} | {"outage_seconds"}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ScenarioError(f"unknown fault(s): {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        for key, value in values.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ScenarioError(f"fault {key} must be a non-negative number, got {value!r}")
            if key in self.RATES and value > 1:
                raise ScenarioError(f"fault {key} is a probability between 0 and 1, got {value!r}")
            if key == "outage_seconds":
                self.outage_until = now + float(value)
            else:
                setattr(self, key, float(value))

    def take(self, count: str) -> bool:
        """Uses up one of the count fault ``count`` (``ram_failures``, ``lost_answers``) if any is left."""
        left = getattr(self, count)
        if left < 1:
            return False
        setattr(self, count, left - 1)
        return True

    def as_dict(self, now: float) -> dict:
        data = asdict(self)
        data["outage_seconds"] = max(0.0, self.outage_until - now)
        return data
