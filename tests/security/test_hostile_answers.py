"""What a hostile or broken server answers never hangs, floods or crashes pvetop.

Each test scripts one misbehaviour on ``HostileServer`` and checks the one clear error (or the
retry) pvetop gives instead: redirects refused, answers capped, a total deadline per request,
reads retried when a connection drops, malformed JSON named as an unexpected answer.
"""

from __future__ import annotations

import json
import time

import pytest

from pvetop.errors import ApiError, ConnectionFailed
from pvetop.pve import PveClient
from tests.hostile import TOKEN_SECRET, Answer, data, drip, endless, hang_up, in_turn, raw, redirect

MIB = 1024 * 1024


# ---------------------------------------------------------------- redirects (point 7)


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_refused_and_nothing_follows_it(hostile, impostor, status):
    hostile.set("cluster/resources", redirect(f"https://127.0.0.1:{impostor.port}/api2/json/cluster/resources", status))
    with PveClient.connect(hostile.settings()) as client, pytest.raises(ConnectionFailed) as refused:
        client.fetch_snapshot()
    assert f"redirect ({status})" in refused.value.message and "never follows" in refused.value.message
    assert impostor.requests == []


def test_a_redirect_of_the_login_is_refused_and_the_password_stays_home(hostile, impostor):
    hostile.set("access/ticket", redirect(f"http://127.0.0.1:{impostor.port}/api2/json/access/ticket", 307))
    settings = hostile.settings(token_name=None, token_value=None, password="hunter2")
    with pytest.raises(ConnectionFailed, match=r"redirect \(307\)"):
        PveClient.connect(settings)
    assert impostor.requests == []


# ---------------------------------------------------------------- size cap (point 5)


def test_an_endless_body_stops_at_the_cap(hostile):
    hostile.set("cluster/resources", endless())
    with PveClient.connect(hostile.settings(max_response_bytes=2 * MIB)) as client:
        with pytest.raises(ApiError) as refused:
            client.fetch_snapshot()
    assert "pvetop reads at most 2097152 bytes (max_response_bytes)" in refused.value.message
    assert "GET /cluster/resources" in refused.value.message and refused.value.exit_code == 4
    assert hostile.endless_bytes_sent < 64 * MIB  # the reading stopped; it was not all buffered first


def test_an_announced_oversize_body_is_refused_before_reading(hostile):
    hostile.set("cluster/status", raw(b"[" * (3 * MIB)))
    with PveClient.connect(hostile.settings(max_response_bytes=2 * MIB)) as client:
        with pytest.raises(ApiError, match=r"announces 3145728 bytes; pvetop reads at most 2097152"):
            client.fetch_snapshot()


def test_a_body_under_the_cap_is_read(hostile):
    with PveClient.connect(hostile.settings(max_response_bytes=MIB)) as client:
        assert client.fetch_snapshot().cluster_name == "hostile"


# ---------------------------------------------------------------- total deadline (point 6)


def test_a_server_dripping_one_byte_at_a_time_is_cut_at_the_deadline(hostile):
    body = json.dumps({"data": []}).encode()
    hostile.set("cluster/resources", drip(body + b" " * 10_000, 0.05))  # ~8 min in all, a byte every 50 ms
    with PveClient.connect(hostile.settings(timeout=1.0)) as client:
        started = time.monotonic()
        with pytest.raises(ConnectionFailed, match=r"GET /cluster/resources got no complete answer within 1 s"):
            client.fetch_snapshot()
        took = time.monotonic() - started
    assert took < 10, took  # the per-read timeout (1 s) never fires: only the total deadline ends it


def test_a_login_that_drips_is_cut_at_the_deadline(hostile):
    hostile.set("access/ticket", drip(b"{" * 10_000, 0.05))
    settings = hostile.settings(token_name=None, token_value=None, password="pw", timeout=1.0)
    started = time.monotonic()
    with pytest.raises(ConnectionFailed, match=r"POST /access/ticket got no complete answer within 1 s"):
        PveClient.connect(settings)
    assert time.monotonic() - started < 10


# ---------------------------------------------------------------- retries of reads (point 10)


class Pauses(list[float]):
    """Records the backoff pauses instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def test_a_dropped_connection_on_a_read_is_retried_with_backoff(hostile):
    pauses = Pauses()
    with PveClient.connect(hostile.settings(), sleep=pauses) as client:
        good = hostile.answers["/api2/json/cluster/resources"]
        hostile.set("cluster/resources", in_turn(hang_up(), hang_up(), good))
        assert client.fetch_snapshot().guests
    assert pauses == [0.25, 1.0] and len(hostile.seen("cluster/resources")) == 3


def test_a_dropped_connection_at_connect_is_retried(hostile):
    hostile.set("version", in_turn(hang_up(), data({"version": "9.0.3"})))
    with PveClient.connect(hostile.settings(), sleep=Pauses()) as client:
        assert client.version["version"] == "9.0.3"


def test_transient_gateway_errors_are_retried_but_not_for_ever(hostile):
    pauses = Pauses()
    with PveClient.connect(hostile.settings(), sleep=pauses) as client:
        hostile.set("cluster/status", raw(b'{"data": null}', 503))
        with pytest.raises(ApiError, match="503"):
            client.fetch_snapshot()
    assert pauses == [0.25, 1.0] and len(hostile.seen("cluster/status")) == 3


@pytest.mark.parametrize("status", [400, 403, 500, 595])
def test_final_errors_are_not_retried(hostile, status):
    pauses = Pauses()
    with PveClient.connect(hostile.settings(), sleep=pauses) as client:
        hostile.set("cluster/status", raw(b'{"data": null}', status))
        with pytest.raises(ApiError):
            client.fetch_snapshot()
    assert pauses == [] and len(hostile.seen("cluster/status")) == 1


def test_a_write_is_never_retried(hostile):
    pauses = Pauses()
    hostile.set("nodes/pve1/qemu/100/migrate", hang_up())
    with PveClient.connect(hostile.settings(), sleep=pauses) as client:
        with pytest.raises(ConnectionFailed, match="may still have reached the cluster"):
            client.post("nodes/pve1/qemu/100/migrate", target="pve2")
    assert pauses == [] and len(hostile.seen("nodes/pve1/qemu/100/migrate")) == 1


# ---------------------------------------------------------------- malformed answers (points 4, 11)


@pytest.mark.parametrize(
    "body, needle",
    [
        (b"[1, 2]", 'expected an object with a "data" member, got list'),
        (b"null", "got null"),
        (b'{"nodata": 1}', "got dict"),
        (b'{"data": [{"type": "node", "node": "pve1", "cpu": NaN}]}', "NaN, which is not JSON"),
        (b'{"data": Infinity}', "Infinity, which is not JSON"),
        (b"<html>login</html>", "the answer is not JSON"),
        (b"\xff\xfe", "the answer is not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "the answer is not JSON"),
        (b'{"data": ' + b"9" * 5000 + b"}", "the answer is not JSON"),
        (b'{"data": {"a": 1}}', "GET /cluster/resources: expected a list, got dict"),
    ],
)
def test_malformed_json_is_an_unexpected_answer_naming_the_endpoint(hostile, body, needle):
    hostile.set("cluster/resources", raw(body))
    with PveClient.connect(hostile.settings()) as client, pytest.raises(ApiError) as refused:
        client.fetch_snapshot()
    message = refused.value.message
    assert message.startswith(f"unexpected answer from 127.0.0.1:{hostile.port} to GET /cluster/resources")
    assert needle in message and refused.value.exit_code == 4


def test_an_error_answer_with_a_hostile_body_is_still_one_api_error(hostile):
    hostile.set("cluster/status", Answer(500, b"[1, 2, 3]", {"Content-Type": "application/json"}))
    with PveClient.connect(hostile.settings()) as client, pytest.raises(ApiError, match="500"):
        client.fetch_snapshot()


@pytest.mark.parametrize(
    "path, answer",
    [
        ("cluster/ha/rules", [{"rule": "ok", "type": "node-affinity", "nodes": "pve1"}, {"rule": 5}, "x"]),
        ("cluster/config/nodes", [{"node": 3}, {"node": "pve1", "quorum_votes": float("1e400")}]),
        ("cluster/options", {"crs": ["ha"]}),
    ],
)
def test_one_malformed_slow_data_entry_does_not_take_the_snapshot_down(hostile, path, answer):
    hostile.set(path, raw(json.dumps({"data": answer}).replace("Infinity", "1e400")))
    with PveClient.connect(hostile.settings()) as client:
        snap = client.fetch_snapshot()
    assert snap.guests and snap.warnings and all(f"/{path}" in warning for warning in snap.warnings)


def test_no_secret_reaches_the_messages(hostile):
    hostile.set("cluster/resources", raw(b"[1]"))
    with PveClient.connect(hostile.settings()) as client, pytest.raises(ApiError) as refused:
        client.fetch_snapshot()
    assert TOKEN_SECRET not in str(refused.value)


def test_detail_pane_answers_have_their_shape_checked(hostile):
    hostile.set("nodes/pve1/qemu/100/config", raw(b'{"data": [1, 2]}'))
    hostile.set("nodes/pve1/rrddata", raw(b'{"data": [{"time": 1, "cpu": 1e400, "mem": 5}, 7, null, "x"]}'))
    hostile.set("nodes/pve1/status", raw(b'{"data": "up"}'))
    with PveClient.connect(hostile.settings()) as client:
        guest = client.fetch_snapshot().guest_by_vmid[100]
        with pytest.raises(ApiError, match=r"to GET /nodes/pve1/qemu/100/config: expected an object, got list"):
            client.guest_config(guest)
        assert client.node_rrddata("pve1") == [{"time": 1, "mem": 5}]  # the infinite value is a gap
        with pytest.raises(ApiError, match=r"to GET /nodes/pve1/status: expected an object, got str"):
            client.node_status("pve1")
