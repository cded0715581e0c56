"""Short, fixed-width text for table cells and the header: the same figure always looks the same.

Pure functions (no Textual), so the tables can pre-format strings and compare them cheaply.
"""

from __future__ import annotations

import functools

_BYTE_UNITS = ("B", "K", "M", "G", "T", "P")
BAR_FULL = "█"
BAR_PARTIALS = " ▏▎▍▌▋▊▉"


def human_bytes(value: float) -> str:
    """1536 -> '1.5K', 3 GiB -> '3.0G': binary units, at most 5 characters."""
    amount = float(value)
    for unit in _BYTE_UNITS:
        if abs(amount) < 1024 or unit == _BYTE_UNITS[-1]:
            if unit == "B":
                return f"{int(amount)}B"
            return f"{amount:.1f}{unit}" if abs(amount) < 100 else f"{amount:.0f}{unit}"
        amount /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


@functools.lru_cache(maxsize=1024)
def human_size(capacity: float) -> str:
    """``human_bytes`` of a capacity (maxmem, maxdisk), which repeats across thousands of rows.
    Used amounts and rates change at every poll: cached, they never came back, and filled the
    cache (8,192 entries) through a long run with figures shown once."""
    return human_bytes(capacity)


def human_rate(bytes_per_second: float | None) -> str:
    """Network/disk rate per second; '-' when it cannot be known yet (first snapshot)."""
    if bytes_per_second is None:
        return "-"
    return f"{human_bytes(bytes_per_second)}/s"


def used_of(used: int, total: int) -> str:
    """'1.5G/4.0G', or just the used amount when the total is unknown."""
    if not total:
        return human_bytes(used) if used else "-"
    return f"{human_bytes(used)}/{human_size(total)}"


def percent(fraction_value: float) -> str:
    return f"{fraction_value * 100:5.1f}%"


def uptime(seconds: int) -> str:
    """One format for every row: '3d 04:05', '0d 00:02' (days, hours:minutes); '-' when stopped."""
    if seconds <= 0:
        return "-"
    days, rest = divmod(int(seconds), 86400)
    hours, minutes = divmod(rest // 60, 60)
    return f"{days}d {hours:02d}:{minutes:02d}"


def age(seconds: float) -> str:
    """How old the data is: '0.4s', '12s', '3m05s', '2h10m'."""
    if seconds < 10:
        return f"{max(seconds, 0.0):.1f}s"
    if seconds < 60:
        return f"{seconds:.0f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def bar(fraction_value: float, width: int) -> str:
    """A horizontal bar of ``width`` cells with eighth-cell resolution (clamped to 0..1)."""
    clamped = min(max(fraction_value, 0.0), 1.0)
    eighths = round(clamped * width * 8)
    full, partial = divmod(eighths, 8)
    text = BAR_FULL * full + (BAR_PARTIALS[partial] if partial and full < width else "")
    return text.ljust(width)
