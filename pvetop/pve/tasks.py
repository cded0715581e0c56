"""PVE worker tasks: UPIDs, status, logs, and progress read from migration logs.

A task lives on the node in its UPID, so every call routes there (``nodes/{upid.node}/tasks``).
``wait_task`` is the CLI's watcher: it polls status + new log lines (2 requests per poll) and
reports parsed progress; time and sleep are injectable so tests drive it with the sim's clock.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from pvetop.errors import ApiError, PvetopError, UsageError
from pvetop.pve.client import PveClient

_UPID = re.compile(
    r"^UPID:(?P<node>[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?):(?P<pid>[0-9A-Fa-f]{8}):"
    r"(?P<pstart>[0-9A-Fa-f]{8,9}):(?P<starttime>[0-9A-Fa-f]{8}):(?P<type>[^:\s]+):(?P<id>[^:\s]*):"
    r"(?P<user>[^:\s]+):?$"
)


@dataclass(frozen=True, slots=True)
class Upid:
    """The parts of ``UPID:<node>:<pid>:<pstart>:<starttime>:<type>:<id>:<user>:`` (hex numbers decoded)."""

    node: str
    pid: int
    pstart: int
    starttime: int
    type: str
    id: str
    user: str


def parse_upid(upid: str) -> Upid:
    match = _UPID.match(upid.strip()) if isinstance(upid, str) else None
    if match is None:
        raise UsageError(
            f"not a Proxmox VE task id: {upid!r}",
            hint="a task id looks like UPID:pve1:0000ABCD:00112233:6560F00D:qmigrate:100:root@pam:",
        )
    return Upid(
        node=match["node"],
        pid=int(match["pid"], 16),
        pstart=int(match["pstart"], 16),
        starttime=int(match["starttime"], 16),
        type=match["type"],
        id=match["id"],
        user=match["user"],
    )


@dataclass(frozen=True, slots=True)
class TaskStatus:
    upid: str
    node: str
    type: str
    id: str
    user: str
    status: str  # running | stopped
    exitstatus: str | None  # "OK", "WARNINGS: N" or PVE's error text once stopped
    starttime: int = 0

    @property
    def running(self) -> bool:
        return self.status == "running"

    @property
    def succeeded(self) -> bool:
        """Stopped with ``OK`` or only warnings (PVE counts both as success)."""
        return not self.running and (self.exitstatus == "OK" or (self.exitstatus or "").startswith("WARNINGS"))

    @property
    def failed(self) -> bool:
        return not self.running and not self.succeeded


def _tasks_path(upid: str) -> str:
    return f"nodes/{parse_upid(upid).node}/tasks/{upid}"


def task_status(client: PveClient, upid: str) -> TaskStatus:
    data = client.get(f"{_tasks_path(upid)}/status")
    if not isinstance(data, dict) or "status" not in data:
        raise ApiError(200, f"unexpected task status answer for {upid}: {data!r:.120}")
    parsed = parse_upid(upid)
    return TaskStatus(
        upid=upid,
        node=data.get("node", parsed.node),
        type=data.get("type", parsed.type),
        id=str(data.get("id", parsed.id)),
        user=parsed.user,  # the UPID keeps a token's full id; the answer splits it into user + tokenid
        status=data["status"],
        exitstatus=data.get("exitstatus"),
        starttime=int(data.get("starttime", parsed.starttime)),
    )


def task_log(client: PveClient, upid: str, start: int = 0, limit: int = 500) -> list[str]:
    """Log lines ``start`` .. ``start+limit`` (0-based, as PVE counts) as plain text."""
    entries = client.get(f"{_tasks_path(upid)}/log", start=start, limit=limit)
    if not isinstance(entries, list):
        raise ApiError(200, f"unexpected task log answer for {upid}: {entries!r:.120}")
    return [str(entry.get("t", "")) if isinstance(entry, dict) else str(entry) for entry in entries]


def stop_task(client: PveClient, upid: str) -> None:
    client.delete(_tasks_path(upid))


def cluster_tasks(client: PveClient) -> list[dict[str, Any]]:
    """Recent tasks cluster-wide (``GET /cluster/tasks``), newest first as PVE returns them."""
    tasks: list[dict[str, Any]] = client.get("cluster/tasks")
    return tasks


def node_tasks(
    client: PveClient,
    node: str,
    *,
    vmid: int | None = None,
    typefilter: str | None = None,
    source: str | None = None,
    since: int | None = None,
    limit: int | None = None,
    errors: bool | None = None,
) -> list[dict[str, Any]]:
    """Task list of one node (``GET /nodes/{node}/tasks``); ``source="all"`` includes running ones."""
    tasks: list[dict[str, Any]] = client.get(
        f"nodes/{node}/tasks", vmid=vmid, typefilter=typefilter, source=source, since=since, limit=limit, errors=errors
    )
    return tasks


# ---------------------------------------------------------------------- migration progress

_SIZE_UNITS = {
    "B": 1,
    "KIB": 1024,
    "MIB": 1024**2,
    "GIB": 1024**3,
    "TIB": 1024**4,
    "PIB": 1024**5,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
    "PB": 1000**5,
    "K": 1024,
    "M": 1024**2,
    "G": 1024**3,
    "T": 1024**4,
}
_SIZE = r"(\d+(?:\.\d+)?)\s*([KMGTP]?i?B|[KMGT])"
# qemu RAM: "migration active, transferred 1.2 GiB of 4.0 GiB VM-state, 500.0 MiB/s"
_QEMU_RAM = re.compile(rf"migration active, transferred {_SIZE} of {_SIZE} VM-state(?:, {_SIZE}/s)?", re.I)
# disk copies: "drive-scsi0: transferred 1.0 GiB of 32.0 GiB (3.12%) in 5s" (live mirror) or
# "transferred 1.0 GiB of 32.0 GiB (3.12%)" (offline / container volume copy)
_COPY = re.compile(rf"(?:(\S+): )?transferred {_SIZE} of {_SIZE} \((\d+(?:\.\d+)?)%\)", re.I)
_STAMP = re.compile(r"^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d) ")
# storage copy through dd: "8589934592 bytes (8.6 GB, 8.0 GiB) copied, 39.7 s, 216 MB/s"
_DD = re.compile(rf"(\d+) bytes .*copied, (\d+(?:\.\d+)?) s, {_SIZE}/s", re.I)
# speed summary: "average migration speed: 113.8 MiB/s - downtime 67 ms"
_AVERAGE = re.compile(rf"average migration speed: {_SIZE}/s", re.I)
_SUCCEEDED = re.compile(r"migration finished successfully|^TASK OK|^TASK WARNINGS", re.I)
_FAILED = re.compile(r"^TASK ERROR|migration aborted|migration problems", re.I)


def _bytes(number: str, unit: str) -> int:
    return int(float(number) * _SIZE_UNITS[unit.upper()])


@dataclass(frozen=True, slots=True)
class Progress:
    """How far a migration is, from its log; ``fraction`` is None while the total is unknown."""

    transferred_bytes: int = 0
    total_bytes: int | None = None
    fraction: float | None = None
    rate: float | None = None  # bytes per second
    finished: bool = False
    phase: str = ""  # "disks" while local disks are copied, "RAM" once the memory copy runs: each has its own %


def parse_migration_progress(log_lines: Iterable[str]) -> Progress:
    """Progress from PVE migration log lines (qemu RAM, disk mirror/copy, dd variants).

    The latest progress line wins; several disks copy one after another, so their sizes are summed
    by disk. Without an explicit speed, the rate comes from the time stamps of two progress lines.
    A finishing line sets ``finished``; on success ``fraction`` is 1.0.
    """
    transferred = 0
    total: int | None = None
    rate: float | None = None
    finished = succeeded = False
    phase = ""
    disks: dict[str, tuple[int, int]] = {}
    last_copy: tuple[float, str, int] | None = None  # (time, disk, bytes) of the previous copy line
    for raw in log_lines:
        line = raw.strip()
        if (match := _QEMU_RAM.search(line)) is not None:
            transferred, total = _bytes(*match.group(1, 2)), _bytes(*match.group(3, 4))
            rate = float(_bytes(*match.group(5, 6))) if match.group(5) else rate
            disks.clear()
            phase = "RAM"
        elif (match := _COPY.search(line)) is not None:
            disk = match.group(1) or "disk"
            phase = "disks"
            done = _bytes(*match.group(2, 3))
            disks[disk] = (done, _bytes(*match.group(4, 5)))
            transferred = sum(d for d, _ in disks.values())
            total = sum(s for _, s in disks.values())
            when = _stamp(line)
            if when is not None:
                if last_copy is not None and last_copy[1] == disk and when > last_copy[0]:
                    rate = (done - last_copy[2]) / (when - last_copy[0])
                last_copy = (when, disk, done)
        elif (match := _DD.search(line)) is not None:
            transferred, total = int(match.group(1)), None
            rate = float(_bytes(*match.group(3, 4)))
            phase = "disks"
        elif (match := _AVERAGE.search(line)) is not None:
            rate = float(_bytes(*match.group(1, 2)))
        if _SUCCEEDED.search(line):
            finished = succeeded = True
        elif _FAILED.search(line):
            finished = True
    fraction = min(1.0, transferred / total) if total else None
    if succeeded:  # zero pages are skipped, so the last RAM line may end below the VM's size
        fraction = 1.0
    return Progress(
        transferred_bytes=transferred, total_bytes=total, fraction=fraction, rate=rate, finished=finished, phase=phase
    )


def _stamp(line: str) -> float | None:
    """Seconds of PVE's ``YYYY-MM-DD HH:MM:SS`` line prefix (only differences matter)."""
    match = _STAMP.match(line)
    if match is None:
        return None
    return float(calendar.timegm(tuple(int(g) for g in match.groups())))


# ---------------------------------------------------------------------- waiting

ProgressCallback = Callable[[TaskStatus, Progress, list[str]], None]


def wait_task(
    client: PveClient,
    upid: str,
    *,
    poll: float = 1.0,
    timeout: float | None = None,
    on_progress: ProgressCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> TaskStatus:
    """Polls a task until it stops; ``on_progress(status, progress, new_log_lines)`` after each poll.

    Returns the final status (check ``succeeded``); raises ``PvetopError`` when ``timeout``
    seconds pass first — the task itself keeps running on the cluster.
    """
    parse_upid(upid)
    deadline = None if timeout is None else clock() + timeout
    lines: list[str] = []
    while True:
        status = task_status(client, upid)
        new_lines = task_log(client, upid, start=len(lines))
        lines.extend(new_lines)
        if on_progress is not None:
            on_progress(status, parse_migration_progress(lines), new_lines)
        if not status.running:
            return status
        if deadline is not None and clock() >= deadline:
            raise PvetopError(
                f"task {upid} still running after {timeout:g} s (it keeps running on the cluster)",
                hint="watch it in the dashboard or stop it with the task's stop action",
            )
        sleep(poll)
