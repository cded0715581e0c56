"""Seeded load curves: guest CPU and memory use as pure functions of (seed, vmid, time).

No random state is stored, so any instant can be evaluated — the current value for
``/cluster/resources`` and past values for ``rrddata`` history come from the same function, and
two simulators with the same seed agree byte for byte.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

MASK64 = (1 << 64) - 1
CURVES = ("steady", "diurnal", "bursty")
DAY = 86400.0


def noise(*values: int) -> float:
    """A uniform number in [0, 1) determined only by the given integers (splitmix64 mixing)."""
    state = 0x9E3779B97F4A7C15
    for value in values:
        state = (state ^ (value & MASK64)) * 0xBF58476D1CE4E5B9 & MASK64
        state ^= state >> 31
        state = state * 0x94D049BB133111EB & MASK64
        state ^= state >> 29
    return (state >> 11) / 9007199254740992.0


def day_shape(t: float, phase: float = 0.0) -> float:
    """0 at 02:00 UTC, 1 at 14:00 UTC: the office-hours swell of a diurnal workload."""
    hours = ((t + phase) % DAY) / 3600.0
    return 0.5 - 0.5 * math.cos(2 * math.pi * (hours - 2.0) / 24.0)


@dataclass(frozen=True, slots=True)
class LoadCurve:
    """How busy one guest is over time.

    ``cpu`` is the typical fraction of the guest's own cores in use, ``mem`` the typical fraction
    of its memory; ``curve`` shapes them over the day (steady, diurnal, bursty). ``night`` (diurnal
    only) is how far cpu and memory fall at 02:00 as a share of their typical level: a workload
    that mostly sleeps at night (a dev lab) has a low one; without it memory barely moves.
    """

    seed: int
    vmid: int
    curve: str
    cpu: float
    mem: float
    night: float | None = None
    # derived once: the guest's own noise key and its diurnal phase shift (seconds)
    key: int = field(init=False, repr=False, compare=False)
    phase: float = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        key = int(noise(self.seed, self.vmid) * (1 << 53))
        object.__setattr__(self, "key", key)
        object.__setattr__(self, "phase", (noise(key, 3) - 0.5) * 7200.0)

    def cpu_at(self, t: float) -> float:
        level = self._level(t)
        jitter = 0.8 + 0.4 * noise(self.key, 1, int(t // 10))
        return min(1.0, max(0.0, level * jitter))

    def mem_at(self, t: float) -> float:
        slow = noise(self.key, 2, int(t // 300))
        swell = day_shape(t, self.phase) if self.curve == "diurnal" else 0.5
        if self.curve == "diurnal" and self.night is not None:
            fraction = self.mem * (self.night + (1.1 - self.night) * swell + 0.06 * slow)
        else:
            fraction = self.mem * (0.9 + 0.12 * swell + 0.06 * slow)
        return min(0.98, max(0.02, fraction))

    def _level(self, t: float) -> float:
        if self.curve == "diurnal":
            night = 0.3 if self.night is None else self.night
            return self.cpu * (night + 2 * (1 - night) * day_shape(t, self.phase))
        if self.curve == "bursty":
            if noise(self.key, 4, int(t // 600)) > 0.82:
                return min(1.0, self.cpu * 3.0 + 0.25)
            return self.cpu * 0.5
        return self.cpu


def default_curve(seed: int, vmid: int) -> LoadCurve:
    """A plausible load for a guest the scenario does not describe, derived from its vmid."""
    kind = CURVES[int(noise(seed, vmid, 10) * len(CURVES))]
    cpu = 0.03 + 0.35 * noise(seed, vmid, 11) ** 2
    mem = 0.25 + 0.55 * noise(seed, vmid, 12)
    return LoadCurve(seed, vmid, kind, round(cpu, 3), round(mem, 3))
