"""UPIDs and migration progress read from PVE's log texts (real formats and the sim's)."""

from __future__ import annotations

import pytest

from pvetop.errors import UsageError
from pvetop.pve.tasks import Progress, TaskStatus, Upid, parse_migration_progress, parse_upid

GIB = 1024**3
MIB = 1024**2


def test_parse_upid_decodes_hex_fields_and_keeps_token_users():
    upid = "UPID:pve1:0000ABCD:00112233:6560F00D:qmigrate:100:root@pam!pvetop:"
    assert parse_upid(upid) == Upid(
        node="pve1",
        pid=0xABCD,
        pstart=0x112233,
        starttime=0x6560F00D,
        type="qmigrate",
        id="100",
        user="root@pam!pvetop",
    )


def test_parse_upid_allows_an_empty_id():
    assert parse_upid("UPID:node-2:00001234:00ABCDEF:6560F00D:startall::root@pam:").id == ""


@pytest.mark.parametrize("bad", ["", "UPID:pve1:xyz", "qmigrate:100", "UPID:pve1:1:2:3:qmigrate:100:root@pam:"])
def test_bad_upid_is_a_usage_error(bad):
    with pytest.raises(UsageError, match="not a Proxmox VE task id"):
        parse_upid(bad)


def test_task_status_outcomes():
    def status(state, exit_text):
        return TaskStatus("UPID:x", "pve1", "qmigrate", "100", "root@pam", state, exit_text)

    assert status("running", None).running and not status("running", None).failed
    assert status("stopped", "OK").succeeded and status("stopped", "WARNINGS: 2").succeeded
    assert status("stopped", "migration aborted").failed


QEMU_LIVE = """\
2025-11-21 10:00:00 starting migration of VM 100 to node 'pve2' (10.0.0.2)
2025-11-21 10:00:00 starting VM 100 on remote node 'pve2'
2025-11-21 10:00:02 start remote tunnel
2025-11-21 10:00:03 starting online/live migration on unix:/run/qemu-server/100.migrate
2025-11-21 10:00:04 migration active, transferred 112.3 MiB of 4.0 GiB VM-state, 115.5 MiB/s
2025-11-21 10:00:05 migration active, transferred 1.0 GiB of 4.0 GiB VM-state, 500.0 MiB/s""".splitlines()


def test_qemu_live_migration_progress():
    progress = parse_migration_progress(QEMU_LIVE)
    assert progress == Progress(
        transferred_bytes=GIB, total_bytes=4 * GIB, fraction=0.25, rate=500.0 * MIB, finished=False, phase="RAM"
    )


def test_qemu_finish_lines_complete_it():
    done = QEMU_LIVE + [
        "2025-11-21 10:00:12 migration active, transferred 4.0 GiB of 4.0 GiB VM-state, 0.0 B/s",
        "2025-11-21 10:00:12 average migration speed: 341.3 MiB/s - downtime 67 ms",
        "2025-11-21 10:00:12 migration status: completed",
        "2025-11-21 10:00:15 migration finished successfully (duration 00:00:15)",
        "TASK OK",
    ]
    progress = parse_migration_progress(done)
    assert progress.finished and progress.fraction == 1.0 and progress.rate == pytest.approx(341.3 * MIB)


def test_local_disk_mirror_lines_sum_over_drives():
    lines = [
        "2025-11-21 10:00:05 drive-scsi0: transferred 8.0 GiB of 8.0 GiB (100.00%) in 10s, ready",
        "2025-11-21 10:00:06 drive-scsi1: transferred 1.0 GiB of 8.0 GiB (12.50%) in 1s",
        "2025-11-21 10:00:08 drive-scsi1: transferred 3.0 GiB of 8.0 GiB (37.50%) in 3s",
    ]
    progress = parse_migration_progress(lines)
    assert (progress.transferred_bytes, progress.total_bytes) == (11 * GIB, 16 * GIB)
    assert progress.fraction == pytest.approx(11 / 16)
    assert progress.rate == pytest.approx(GIB)  # 2 GiB between the two scsi1 stamps, 2 s apart


def test_offline_copy_lines_without_drive_or_duration():
    lines = [
        "2025-11-21 10:00:01 copying local disk image 'local-lvm:vm-101-disk-0'",
        "2025-11-21 10:00:02 transferred 512.0 MiB of 2.0 GiB (25.00%)",
        "2025-11-21 10:00:04 transferred 1.5 GiB of 2.0 GiB (75.00%)",
    ]
    progress = parse_migration_progress(lines)
    assert progress.fraction == 0.75 and progress.rate == pytest.approx(512 * MIB)


def test_dd_copy_line_gives_bytes_and_rate_without_total():
    progress = parse_migration_progress(["8589934592 bytes (8.6 GB, 8.0 GiB) copied, 39.7 s, 216 MB/s"])
    assert (progress.transferred_bytes, progress.total_bytes, progress.fraction) == (8589934592, None, None)
    assert progress.rate == 216e6


def test_failure_lines_finish_it():
    lines = QEMU_LIVE + [
        "2025-11-21 10:00:06 ERROR: online migrate failure - aborting",
        "2025-11-21 10:00:06 ERROR: migration aborted (duration 00:00:06): online migrate failure",
        "TASK ERROR: migration aborted",
    ]
    assert parse_migration_progress(lines).finished


def test_no_progress_yet():
    assert parse_migration_progress(QEMU_LIVE[:2]) == Progress()


def test_success_completes_even_when_ram_lines_stop_short_but_failure_does_not():
    short = ["2025-11-21 10:00:48 migration active, transferred 5.0 GiB of 8.0 GiB VM-state, 110.0 MiB/s"]
    assert parse_migration_progress(short + ["migration finished successfully (duration 00:00:50)"]).fraction == 1.0
    failed = parse_migration_progress(short + ["TASK ERROR: migration aborted"])
    assert failed.finished and failed.fraction == 5 / 8
