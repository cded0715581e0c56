"""PVE worker tasks: UPIDs, timed log lines and the status/list shapes the API returns.

A task is planned ahead: its log lines carry the simulated time they appear at and ``end_time``
says when it stops, so reading a task at any instant shows exactly the lines written so far.
"""

from __future__ import annotations

import re
import time as _time
from dataclasses import dataclass, field

UPID_RE = re.compile(
    r"^UPID:(?P<node>[a-zA-Z0-9][a-zA-Z0-9.\-]*):(?P<pid>[0-9A-F]{8}):(?P<pstart>[0-9A-F]{8,9}):"
    r"(?P<starttime>[0-9A-F]{8}):(?P<type>[^:\s]+):(?P<id>[^:\s]*):(?P<user>[^:\s]+):$"
)


def make_upid(node: str, pid: int, pstart: int, starttime: int, task_type: str, task_id: str, user: str) -> str:
    """UPID:<node>:<pid %08X>:<pstart %08X>:<starttime %08X>:<type>:<id>:<user>: (trailing colon)."""
    return f"UPID:{node}:{pid:08X}:{pstart:08X}:{starttime:08X}:{task_type}:{task_id}:{user}:"


def parse_upid(upid: str) -> dict | None:
    match = UPID_RE.match(upid)
    if not match:
        return None
    return match.groupdict()


def stamp(t: float) -> str:
    """The local-time prefix PVE puts on migration log lines (the sim runs in UTC)."""
    return _time.strftime("%Y-%m-%d %H:%M:%S", _time.gmtime(t))


def duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@dataclass
class Task:
    upid: str
    node: str
    pid: int
    pstart: int
    starttime: int
    type: str
    id: str
    user: str
    end_time: float | None = None
    exitstatus: str | None = None
    lines: list[tuple[float, str]] = field(default_factory=list)  # (time shown, text)

    def running(self, now: float) -> bool:
        return self.end_time is None or now < self.end_time

    def log(self, when: float, text: str, *, stamped: bool = True) -> None:
        self.lines.append((when, f"{stamp(when)} {text}" if stamped else text))

    def finish(self, when: float, exitstatus: str) -> None:
        """Plans the end of the task; drops lines planned after it (an aborted plan)."""
        self.lines = [line for line in self.lines if line[0] <= when]
        self.end_time = when
        self.exitstatus = exitstatus
        if exitstatus == "OK":
            self.lines.append((when, "TASK OK"))
        elif exitstatus.startswith("WARNINGS"):
            self.lines.append((when, f"TASK {exitstatus}"))
        else:
            self.lines.append((when, f"TASK ERROR: {exitstatus}"))

    def visible_lines(self, now: float) -> list[str]:
        return [text for when, text in self.lines if when <= now]

    def owner(self) -> dict:
        """``user`` and, for an API token's task, ``tokenid``: PVE splits ``root@pam!pvetop`` in
        its task answers (API2/Tasks.pm $convert_token_task; Cluster.pm tasks)."""
        user, bang, tokenid = self.user.partition("!")
        return {"user": user, "tokenid": tokenid} if bang else {"user": user}

    def identity(self) -> dict:
        """What every task answer carries: the UPID and its parts, the owner split as PVE does."""
        return {
            "upid": self.upid,
            "node": self.node,
            "pid": self.pid,
            "pstart": self.pstart,
            "starttime": self.starttime,
            "type": self.type,
            "id": self.id,
            **self.owner(),
        }

    def status(self, now: float) -> dict:
        entry = self.identity()
        if self.running(now):
            entry["status"] = "running"
        else:
            entry["status"] = "stopped"
            entry["exitstatus"] = self.exitstatus
        return entry

    def list_entry(self, now: float) -> dict:
        entry = self.identity()
        if self.end_time is not None and not self.running(now):
            entry["endtime"] = int(self.end_time)
            entry["status"] = self.exitstatus
        return entry

    def failed(self, now: float) -> bool:
        return not self.running(now) and self.exitstatus != "OK" and not str(self.exitstatus).startswith("WARNINGS")
