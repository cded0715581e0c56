"""Plain-text descriptions of moves, plans and running jobs, shared by the CLI and the UI.

One wording everywhere: what the CLI prints while waiting is what the tasks pane shows.
"""

from __future__ import annotations

from pvetop.engine.migrations import SETTING_MAX_PARALLEL, JobState, Limits, MigrationJob
from pvetop.policy.metrics import imbalance_change
from pvetop.policy.placement import EvacuationPlan, PlannedMove, Unplaced
from pvetop.pve.tasks import Progress

GIB = 1024**3
MIB = 1024**2


def size(value: float) -> str:
    """PVE-style sizes: 512.0 MiB, 3.5 GiB."""
    return f"{value / GIB:.1f} GiB" if value >= GIB else f"{value / MIB:.1f} MiB"


def how(move: PlannedMove) -> str:
    """How the guest moves: live, restart (containers), offline; plus copied local disks."""
    if move.online:
        kind = "live"
    elif move.restart:
        kind = "restart"
    else:
        kind = "offline"
    return kind + (" + local disks" if move.with_local_disks else "")


def move_line(move: PlannedMove) -> str:
    name = f" {move.name}" if move.name else ""
    kind = "VM" if move.type == "qemu" else "CT"
    warn = f"  (warning: {'; '.join(move.warnings)})" if move.warnings else ""
    return f"{kind} {move.vmid}{name}: {move.source} → {move.target} [{how(move)}]{warn}"


def unplaced_line(item: Unplaced) -> str:
    name = f" {item.name}" if item.name else ""
    return f"{item.vmid}{name}: {item.reason}"


def plan_lines(plan: EvacuationPlan) -> list[str]:
    """The evacuation preview: moves, guests awaiting a decision, guests nothing can take, balance."""
    lines = [f"evacuate {plan.node}: {len(plan.moves)} move(s)"]
    lines += [f"  {move_line(move)}" for move in plan.moves]
    if plan.needs_decision:
        lines.append(f"held by a pin or lock ({len(plan.needs_decision)}): stay unless you move them anyway")
        lines += [
            f"  {unplaced_line(item)}  [could go to {', '.join(item.alternatives)}]" for item in plan.needs_decision
        ]
    if plan.unplaceable:
        lines.append(f"no node can take ({len(plan.unplaceable)}): they stay on {plan.node}")
        lines += [f"  {unplaced_line(item)}" for item in plan.unplaceable]
    lines.append(f"cluster imbalance {imbalance_change(plan.before.imbalance, plan.after.imbalance)}")
    return lines


def limits_text(limits: Limits) -> str:
    """How many moves run at once, and which settings say so."""
    return f"at most {limits.max_parallel} at once (setting {SETTING_MAX_PARALLEL})"


def progress_text(progress: Progress) -> str:
    """'RAM 45% (3.6 GiB of 8.0 GiB, 110.0 MiB/s)', or what is known of it ('' before the first
    figure); the phase (disks, then RAM) says why the percentage starts again."""
    details = []
    if progress.total_bytes:
        head = f"{progress.fraction or 0:.0%}"
        details.append(f"{size(progress.transferred_bytes)} of {size(progress.total_bytes)}")
    elif progress.transferred_bytes:
        head = f"{size(progress.transferred_bytes)} copied"
    else:
        return ""
    if progress.rate:
        details.append(f"{size(progress.rate)}/s")
    phase = f"{progress.phase} " if progress.phase and not progress.finished else ""  # each phase has its own %
    return phase + head + (f" ({', '.join(details)})" if details else "")


def job_status(job: MigrationJob) -> str:
    """One status word or phrase for a job: queued, waiting for the HA manager, 45% (...), ok, the error."""
    if job.state is JobState.RUNNING:
        if job.via_ha and job.upid is None:
            return "via HA manager: waiting for it to start the migration"
        shown = progress_text(job.progress) or "running"
        return f"via HA manager: {shown}" if job.via_ha else shown
    if job.state is JobState.FAILED:
        return f"failed: {job.error}"
    if job.state is JobState.CANCELLED:
        return "cancelled"
    if job.state is JobState.SUCCEEDED:
        return "done via HA manager" if job.via_ha else "done"
    return job.state.value


def job_line(job: MigrationJob, now: float) -> str:
    """``103 (nextcloud) pve-mini1 → pve-big: 45% (...) 00:12``, as the CLI prints while waiting."""
    took = job.duration(now)
    clock = "" if took is None else f" [{int(took) // 60:02d}:{int(took) % 60:02d}]"
    return f"{job.label}: {job_status(job)}{clock}"
