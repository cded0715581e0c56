"""PveClient against the simulated cluster: snapshot content, request budget, auth, TLS, failover."""

from __future__ import annotations

import socket
import ssl
import threading
import warnings
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
import trustme

from pvetop.config import ConnectionSettings
from pvetop.errors import ApiError, ConnectionFailed
from pvetop.model import HaRule
from pvetop.pve import PveClient
from pvetop.pve.transport import TICKET_RENEW_AFTER, CountingAdapter, RequestCounter, TicketAuth, build_sessions
from pvetop.sim.runner import start_sim
from pvetop.sim.views import RRD_EXPIRE_SECONDS
from tests.pve.connection import closed_port, password_settings, token_settings


def test_snapshot_matches_the_sims_state(homelab, client):
    snap = client.fetch_snapshot()
    cluster = homelab.cluster
    assert snap.cluster_name == cluster.cluster_name and snap.quorate
    assert sorted(n.name for n in snap.nodes) == sorted(cluster.nodes)
    assert sorted(g.vmid for g in snap.guests) == sorted(cluster.guests)
    for node in snap.nodes:
        sim_node = cluster.nodes[node.name]
        assert (node.maxcpu, node.maxmem, node.nodeid, node.ip, node.votes) == (
            sim_node.cpus,
            sim_node.memory,
            sim_node.nodeid,
            sim_node.ip,
            sim_node.votes,
        )
        assert 0.0 <= node.cpu <= 1.0 and 0 < node.mem <= node.maxmem
    for guest in snap.guests:
        sim_guest = cluster.guests[guest.vmid]
        assert (guest.type, guest.node, guest.name, guest.maxmem) == (
            sim_guest.type,
            sim_guest.node,
            sim_guest.name,
            sim_guest.memory,
        )
        assert guest.tags == tuple(sim_guest.tags) and guest.hastate == (
            "started" if sim_guest.ha and guest.running else guest.hastate
        )
        assert 0.0 <= guest.cpu <= 1.0 and guest.mem <= guest.maxmem
    assert snap.storage and all(s.maxdisk > 0 for s in snap.storage)


@pytest.mark.parametrize("scenario", ["homelab", "large"])
def test_every_snapshot_costs_exactly_two_requests(scenario):
    with (
        start_sim(scenario=scenario, seed=1, port=0, manual_clock=True) as sim,
        PveClient.connect(token_settings(sim, timeout=30)) as client,
    ):
        for _ in range(3):
            before = client.request_count
            snap = client.fetch_snapshot()
            assert snap.api_requests == 2 and client.request_count - before == 2
            sim.cluster.step(5)
        assert len(snap.guests) == len(sim.cluster.guests) and len(snap.nodes) == len(sim.cluster.nodes)


def test_slow_data_is_fetched_on_connect_and_on_its_own_cadence(homelab):
    with PveClient.connect(token_settings(homelab), slow_data_every=3) as client:
        assert client.ha_rules and all(isinstance(rule, HaRule) for rule in client.ha_rules)
        assert client.crs.ha == "static"
        due = []
        for _ in range(4):
            snap = client.fetch_snapshot()
            assert snap.ha_rules == client.ha_rules and snap.api_requests == 2
            due.append(client.slow_data_due)
        assert due == [False, False, True, True]
        assert client.refresh_slow_data() == 4  # options, HA rules, corosync votes, HA node states
        assert not client.slow_data_due
        assert {node.hastate for node in snap.nodes} == {"online"}  # the HA manager's view of each node


def test_slow_data_changes_reach_the_next_snapshot_only_after_a_slow_refresh(fresh_homelab):
    with PveClient.connect(token_settings(fresh_homelab)) as client:
        fresh_homelab.cluster.ha_rules.clear()
        assert client.fetch_snapshot().ha_rules  # cached
        client.refresh_slow_data()
        assert client.fetch_snapshot().ha_rules == ()


def test_guests_of_a_crashed_node_keep_their_last_status_then_show_unknown(fresh_homelab):
    """pmxcfs keeps a dead node's last broadcast for 300 s (status.c rrd_entry_is_old): the
    snapshot shows its guests as they were, then ``unknown``."""
    cluster = fresh_homelab.cluster
    with PveClient.connect(token_settings(fresh_homelab)) as client:
        victim = next(
            name
            for name in cluster.nodes
            if name != cluster.entry_node.name and any(g.node == name for g in cluster.guests.values())
        )
        before = {g.vmid: g.status for g in client.fetch_snapshot().guests_by_node[victim]}
        cluster.crash_node(victim)
        fresh_homelab.cluster.step(1)
        snap = client.fetch_snapshot()
        assert snap.node_by_name[victim].status != "online"
        assert {g.vmid: g.status for g in snap.guests_by_node[victim]} == before
        fresh_homelab.cluster.step(RRD_EXPIRE_SECONDS)
        lost = client.fetch_snapshot().guests_by_node[victim]
        assert lost and all(g.status == "unknown" for g in lost)


def test_password_login_works_and_writes_carry_the_csrf_token(fresh_homelab):
    with PveClient.connect(password_settings(fresh_homelab)) as client:
        node = client.fetch_snapshot().nodes[0].name
        client.put(f"nodes/{node}/config", description="set through a ticket session")
        assert client.node_config(node)["description"] == "set through a ticket session"


def test_an_expired_ticket_is_replaced_by_logging_in_again(fresh_homelab):
    with PveClient.connect(password_settings(fresh_homelab)) as client:
        first = client._ticket_auth.ticket
        fresh_homelab.cluster.step(2 * 3600 + 60)  # the sim's tickets expire after 2 h of its time
        assert client.fetch_snapshot().nodes
        assert client._ticket_auth.ticket != first


def test_ticket_is_renewed_before_its_two_hours(homelab):
    info = homelab.info
    now = [1000.0]
    counter = RequestCounter()
    _, bare = build_sessions(CountingAdapter(counter), None)
    auth = TicketAuth(info["user"], info["password"], bare, timeout=5, verify_ssl=info["ca_file"], clock=lambda: now[0])
    auth.ensure(f"https://{info['host']}:{info['port']}/api2/json")
    assert auth.ticket and counter.value == 1
    now[0] += TICKET_RENEW_AFTER - 1
    assert not auth.renew_if_due() and counter.value == 1
    assert auth.renew_if_due(early=60) and counter.value == 2  # the slow cadence renews a bit early
    now[0] += TICKET_RENEW_AFTER
    assert auth.renew_if_due() and counter.value == 3 and TICKET_RENEW_AFTER < 7200


def test_wrong_password_is_one_clear_connection_failure(homelab):
    with pytest.raises(ConnectionFailed, match="login as root@pam on 127.0.0.1:.* failed: 401 authentication failure"):
        PveClient.connect(password_settings(homelab, password="wrong"))


def test_bad_token_is_one_clear_connection_failure(homelab):
    with pytest.raises(ConnectionFailed, match=r"API token root@pam!pvetop was refused .*401 Authentication failed!"):
        PveClient.connect(token_settings(homelab, token_value="00000000-0000-0000-0000-000000000000"))


def test_failover_skips_a_dead_host_and_remembers_the_working_one(homelab):
    dead = ("127.0.0.1", closed_port())
    live = (homelab.info["host"], homelab.info["port"])
    with PveClient.connect(token_settings(homelab, hosts=(dead, live))) as client:
        assert client.active_host == f"127.0.0.1:{live[1]}"
        before = client.request_count
        client.fetch_snapshot()
        assert client.request_count - before == 2  # the dead host is not tried again


def test_failover_with_ticket_auth(homelab):
    dead = ("127.0.0.1", closed_port())
    live = (homelab.info["host"], homelab.info["port"])
    with PveClient.connect(password_settings(homelab, hosts=(dead, live))) as client:
        assert client.fetch_snapshot().nodes


def test_unreachable_hosts_are_all_named(homelab):
    ports = closed_port(), closed_port()
    settings = token_settings(homelab, hosts=tuple(("127.0.0.1", port) for port in ports))
    with pytest.raises(ConnectionFailed) as caught:
        PveClient.connect(settings)
    message = str(caught.value)
    assert "cannot reach any host" in message and "Connection refused" in message
    assert all(f"127.0.0.1:{port}" in message for port in ports)


def test_silent_host_times_out():
    with socket.socket() as silent:  # accepts TCP connections but never speaks TLS
        silent.bind(("127.0.0.1", 0))
        silent.listen(4)
        settings = ConnectionSettings(
            hosts=(silent.getsockname(),), user="root@pam", token_name="t", token_value="v", timeout=0.3
        )
        with pytest.raises(ConnectionFailed, match=r"answer within 0.3 s \(timeout\)"):
            PveClient.connect(settings)


def test_ca_file_verifies_and_default_verification_refuses_the_unknown_ca(homelab):
    assert PveClient.connect(token_settings(homelab)).fetch_snapshot().nodes  # verify = the sim's CA file
    with pytest.raises(ConnectionFailed) as caught:
        PveClient.connect(token_settings(homelab, verify=True))
    message = str(caught.value)
    assert "TLS verification of 127.0.0.1" in message and "certificate verify failed" in message
    assert "--verify-ssl CA_FILE" in message and "--fingerprint" in message
    assert homelab.info["fingerprint"] in message  # what to pin, if the user trusts it


def test_fingerprint_pin_replaces_ca_verification(homelab):
    settings = token_settings(homelab, verify=True, fingerprint=homelab.info["fingerprint"])
    with PveClient.connect(settings) as client:
        assert client.fetch_snapshot().nodes and client.insecure_warning is None


def test_wrong_fingerprint_shows_expected_and_presented(homelab):
    wrong = ":".join(["00"] * 32)
    with pytest.raises(ConnectionFailed) as caught:
        PveClient.connect(token_settings(homelab, fingerprint=wrong))
    message = str(caught.value)
    assert f"expected {wrong}" in message and f"presented {homelab.info['fingerprint']}" in message


def test_wrong_fingerprint_also_stops_password_logins(homelab):
    with pytest.raises(ConnectionFailed, match="does not match the pinned fingerprint"):
        PveClient.connect(password_settings(homelab, fingerprint=":".join(["11"] * 32)))


def test_verify_false_works_with_a_warning_for_the_ui_and_no_warning_spam(homelab):
    with warnings.catch_warnings(record=True) as caught:
        with PveClient.connect(token_settings(homelab, verify=False)) as client:
            client.fetch_snapshot()
            assert "TLS verification is OFF" in client.insecure_warning
    assert not [w for w in caught if "Unverified HTTPS" in str(w.message)]


def test_api_errors_keep_pves_status_and_text(client):
    with pytest.raises(ApiError) as caught:
        client.get("nodes/no-such-node/status")
    assert caught.value.status in (400, 500, 595) and "no-such-node" in str(caught.value)
    with pytest.raises(ApiError) as caught:
        client.get("no/such/endpoint")
    assert caught.value.status == 501


def test_parameter_errors_keep_pves_errors_map(client):
    guest = next(g for g in client.fetch_snapshot().guests if g.type == "qemu")
    with pytest.raises(ApiError) as caught:
        client.post(f"nodes/{guest.node}/qemu/{guest.vmid}/migrate", target=guest.node, online=1)
    assert caught.value.status == 400 and "target" in caught.value.errors
    assert "target is local node" in str(caught.value)


def test_missing_privilege_is_a_403_with_a_hint(homelab):
    readonly = homelab.readonly_info
    with PveClient.connect(
        token_settings(
            homelab, user=readonly["user"], token_name=readonly["token_name"], token_value=readonly["token_value"]
        )
    ) as client:
        guest = client.fetch_snapshot().guests[0]
        with pytest.raises(ApiError) as caught:
            client.post(f"nodes/{guest.node}/{guest.type}/{guest.vmid}/migrate", target="elsewhere")
    assert caught.value.status == 403 and "Permission check failed" in str(caught.value)
    assert "VM.Migrate" in str(caught.value)


def test_detail_calls(client):
    snap = client.fetch_snapshot()
    node = snap.nodes[0].name
    guest = next(g for g in snap.guests if g.running)
    node_points = client.node_rrddata(node)
    guest_points = client.guest_rrddata(guest, timeframe="hour")
    assert node_points and "cpu" in node_points[-1] and guest_points and "maxmem" in guest_points[-1]
    assert client.guest_config(guest)["digest"]
    assert "memory" in client.node_status(node)
    assert isinstance(client.node_config(node), dict)


def test_a_service_that_is_not_pve_is_named_as_such():
    class NotPve(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(404)
            self.send_header("Content-Length", "9")
            self.end_headers()
            self.wfile.write(b"not here\n")

        def log_message(self, *args):
            pass

    ca = trustme.CA()
    server = HTTPServer(("127.0.0.1", 0), NotPve)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        settings = ConnectionSettings(
            hosts=(server.server_address,), user="root@pam", token_name="t", token_value="v", verify=False
        )
        with pytest.raises(ConnectionFailed, match="does not answer like a Proxmox VE API"):
            PveClient.connect(settings)
    finally:
        server.shutdown()
        server.server_close()


def test_plain_http_port_is_a_handshake_error_not_a_certificate_one():
    with socket.socket() as plain:
        plain.bind(("127.0.0.1", 0))
        plain.listen(1)

        def answer_http():
            connection, _ = plain.accept()
            with connection:
                connection.recv(1024)
                connection.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

        threading.Thread(target=answer_http, daemon=True).start()
        settings = ConnectionSettings(hosts=(plain.getsockname(),), user="root@pam", token_name="t", token_value="v")
        with pytest.raises(ConnectionFailed, match="TLS handshake with 127.0.0.1:.* failed") as caught:
            PveClient.connect(settings)
        assert "HTTPS, 8006" in str(caught.value)


def test_api_requests_counts_only_the_refresh_own_requests(client):
    """A detail pane calling from another thread must not inflate the refresh's figure."""
    node = client.fetch_snapshot().nodes[0].name
    stop = threading.Event()

    def detail_pane():
        while not stop.is_set():
            client.node_status(node)

    worker = threading.Thread(target=detail_pane)
    worker.start()
    try:
        snapshots = [client.fetch_snapshot() for _ in range(5)]
    finally:
        stop.set()
        worker.join()
    assert {snap.api_requests for snap in snapshots} == {2}
