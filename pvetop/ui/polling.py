"""What a poll produces and how the next one is timed.

The poll runs in a thread worker; everything that can be computed off the UI thread (rates,
totals, balance, the formatted rows) is computed there and travels in a ``Refresh``. The UI thread only diffs and
renders. Polls never overlap: the next one is armed when the previous one has finished.

The blocking part runs in a daemon thread (``run_in_daemon_thread``), not in the executor behind
Textual's thread workers: the process waits for those at exit, so quitting would wait for a
read blocked on a slow or dead network. A poll that runs far past its interval has overrun
(``poll_overrun_after``): the app then marks its data stale without waiting for the answer.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

from textual.message import Message

from pvetop.model import ClusterSnapshot
from pvetop.policy.metrics import Balance, ClusterTotals, cluster_balance, cluster_totals, guest_rates
from pvetop.ui.table import Row, RowsUpdate, Sorting
from pvetop.ui.tables import GuestTable, Marks, guest_rows, node_rows

MAX_BACKOFF_SECONDS = 60.0
OVERRUN_INTERVALS = 3  # a poll still running after this many intervals (and the floor) has overrun
OVERRUN_FLOOR_SECONDS = 10.0  # never sooner: a slow-data refresh is 5 requests, each up to its timeout
INTERVAL_STEPS = (0.5, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)


@dataclass(frozen=True, eq=False)  # each poll is a new value: compared by identity, never field by field
class Refresh:
    snapshot: ClusterSnapshot
    rates: dict[int, tuple[float, float]]  # vmid -> (net in, net out) bytes/s
    totals: ClusterTotals
    balance: Balance
    node_rows: dict[str, Row]  # ready to show, every node / every guest (filtering is the UI's)
    guest_rows: dict[str, Row]
    marks: Marks  # the rules and tags the flag columns were rendered with
    received_at: float  # our clock when it arrived, for the "age" in the header
    guest_update: RowsUpdate | None = None  # guest_rows in the guest table's order when the poll began


def with_known_names(snapshot: ClusterSnapshot, previous: ClusterSnapshot) -> ClusterSnapshot:
    """Guests of a node that stopped answering come without a name (PVE lists only vmid and
    status for them): keep the name last seen, so the row still says which guest it is."""
    nameless = [guest for guest in snapshot.guests if not guest.name]
    if not nameless:
        return snapshot
    known = previous.guest_by_vmid
    names = {g.vmid: known[g.vmid].name for g in nameless if g.vmid in known and known[g.vmid].name}
    if not names:
        return snapshot
    guests = tuple(replace(g, name=names[g.vmid]) if g.vmid in names else g for g in snapshot.guests)
    return replace(snapshot, guests=guests)


def prepare(
    snapshot: ClusterSnapshot, previous: Refresh | None, marks: Marks, now: float, guest_sorting: Sorting | None = None
) -> Refresh:
    """Everything the UI shows about ``snapshot``, re-using ``previous``'s unchanged rows, and the
    guest rows in the order of ``guest_sorting`` (the guest table's)."""
    rates = {}
    if previous is not None:
        snapshot = with_known_names(snapshot, previous.snapshot)
        rates = {vmid: (r.netin, r.netout) for vmid, r in guest_rates(previous.snapshot, snapshot).items()}
    old_nodes = previous.node_rows if previous is not None else None
    old_guests = previous.guest_rows if previous is not None else None
    guests = guest_rows(snapshot, rates, marks, old_guests)
    return Refresh(
        snapshot,
        rates,
        cluster_totals(snapshot),
        cluster_balance(snapshot),
        node_rows(snapshot, marks.ruleset, old_nodes, marks.power, marks.basics),
        guests,
        marks,
        now,
        None if guest_sorting is None else RowsUpdate(old_guests or {}, guests, guest_sorting, GuestTable.growing()),
    )


def with_marks(refresh: Refresh, marks: Marks) -> Refresh:
    """The same data with other rules (pins, locks, reservations), tags, power states or node
    basics; the guest rows are built again only when what they show (rules, tags) changed, as
    this runs on the UI thread and a large cluster has thousands of them."""
    before = refresh.marks
    nodes = node_rows(refresh.snapshot, marks.ruleset, refresh.node_rows, marks.power, marks.basics)
    if before.ruleset == marks.ruleset and before.tagged == marks.tagged:
        return replace(refresh, marks=marks, node_rows=nodes)
    guests = guest_rows(refresh.snapshot, refresh.rates, marks, refresh.guest_rows)
    update = refresh.guest_update
    return replace(
        refresh,
        marks=marks,
        node_rows=nodes,
        guest_rows=guests,
        guest_update=None
        if update is None
        else RowsUpdate(refresh.guest_rows, guests, update.sorting, GuestTable.growing()),
    )


def backoff_delay(interval: float, failures: int) -> float:
    """Wait before retrying after ``failures`` failed polls in a row: doubling, capped at 60 s."""
    if failures <= 0:
        return interval
    return min(interval * 2 ** min(failures, 16), max(MAX_BACKOFF_SECONDS, interval))


def poll_overrun_after(interval: float) -> float:
    """Seconds after which a poll that has not answered makes the shown data stale."""
    return max(OVERRUN_INTERVALS * interval, OVERRUN_FLOOR_SECONDS)


Result = TypeVar("Result")


async def run_in_daemon_thread(work: Callable[[], Result]) -> Result:
    """``work()`` in a daemon thread, awaited; cancelling the awaiting task abandons the thread."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[Result] = loop.create_future()

    def settle(result: Result | None, error: BaseException | None) -> None:
        if future.done():  # the awaiting task was cancelled (the app is quitting)
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            result, error = work(), None
        except Exception as exc:  # handed to the awaiting task
            result, error = None, exc
        try:
            loop.call_soon_threadsafe(settle, result, error)
        except RuntimeError:  # the event loop is closed: nobody waits any more
            pass

    threading.Thread(target=run, name="pvetop-poll", daemon=True).start()
    return await future


def next_interval(current: float, step: int) -> float:
    """The next faster (step -1) or slower (+1) refresh interval from ``INTERVAL_STEPS``."""
    if step > 0:
        return next((s for s in INTERVAL_STEPS if s > current), INTERVAL_STEPS[-1])
    return next((s for s in reversed(INTERVAL_STEPS) if s < current), INTERVAL_STEPS[0])


class SnapshotArrived(Message):
    """A poll succeeded; a newer one replaces it if it is still queued."""

    def __init__(self, refresh: Refresh) -> None:
        super().__init__()
        self.refresh = refresh

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, SnapshotArrived)


class PollFailed(Message):
    """A poll failed; the app keeps the last data and marks it stale."""

    def __init__(self, reason: str) -> None:
        super().__init__()
        self.reason = reason
