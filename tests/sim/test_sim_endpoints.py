"""Each node is its own API endpoint, and pvetop's client survives losing the one it talks to.

Real Proxmox VE runs one pveproxy per node: a client talks to one node, ``local`` in
/cluster/status is that node, and when the node powers off or crashes its connections fail and
the client must switch hosts (pve-manager PVE/Service/pveproxy.pm; API2/Cluster.pm get_status
sets ``local`` from PVE::INotify::nodename()).
"""

from __future__ import annotations

import socket

import pytest
import requests

from pvetop.config import settings_from_sim_info
from pvetop.pve import PveClient
from tests.sim.clients import call, token_api


def endpoint(sim, node: str) -> dict:
    return next(e for e in sim.info["endpoints"] if e["node"] == node)


def local_of(sim, node: str) -> list[str]:
    status = call(token_api(dict(sim.info, **endpoint(sim, node))), "GET", "/cluster/status")
    return [e["name"] for e in status if e.get("local")]


def refuses(sim, node: str) -> bool:
    try:
        socket.create_connection(("127.0.0.1", endpoint(sim, node)["port"]), timeout=5).close()
    except ConnectionRefusedError:
        return True
    return False


def test_every_node_serves_the_api_on_its_own_port_and_is_local_there(homelab):
    """API2/Cluster.pm get_status: ``local`` is the node whose pveproxy answers; the info keeps the
    first node as ``host``/``port``."""
    info = homelab.info
    assert [e["node"] for e in info["endpoints"]] == ["pve-mini1", "pve-mini2", "pve-big"]
    assert (info["host"], info["port"]) == (info["endpoints"][0]["host"], info["endpoints"][0]["port"])
    assert len({e["port"] for e in info["endpoints"]} | {info["control_url"]}) == 4
    for node in ("pve-mini1", "pve-mini2", "pve-big"):
        assert local_of(homelab, node) == [node]


def test_a_node_that_is_down_refuses_connections_until_it_boots(homelab):
    """A powered-off or crashed node runs no pveproxy: its port refuses; it answers again once it
    has booted. A connection opened before the crash is dropped on its next request."""
    session = requests.Session()
    url = f"https://127.0.0.1:{endpoint(homelab, 'pve-big')['port']}/api2/json/version"
    headers = {"Authorization": f"PVEAPIToken=root@pam!pvetop={homelab.info['token_value']}"}
    assert session.get(url, headers=headers, verify=homelab.info["ca_file"], timeout=10).ok  # keep-alive open
    homelab.cluster.crash_node("pve-big")
    with pytest.raises(requests.ConnectionError):
        session.get(url, headers=headers, verify=homelab.info["ca_file"], timeout=10)
    homelab.settle()
    assert refuses(homelab, "pve-big")
    assert local_of(homelab, "pve-mini1") == ["pve-mini1"], "the other nodes keep answering"

    call(token_api(homelab.info), "POST", "/nodes/pve-big/wakeonlan")
    homelab.cluster.step(179)
    homelab.settle()
    assert refuses(homelab, "pve-big")
    homelab.cluster.step(1)
    homelab.settle()
    assert local_of(homelab, "pve-big") == ["pve-big"]


def test_a_shut_down_node_answers_while_shutting_down_then_refuses(homelab):
    """pve-manager Nodes.pm node_cmd: the shutdown runs in the background; pveproxy keeps answering
    until the node powers off."""
    call(token_api(homelab.info), "POST", "/nodes/pve-big/status", command="shutdown")
    homelab.cluster.step(30)
    homelab.settle()
    assert local_of(homelab, "pve-big") == ["pve-big"]
    while homelab.cluster.nodes["pve-big"].power != "off":  # its guests stop, then the OS goes down
        homelab.cluster.step(1)
    homelab.settle()
    assert refuses(homelab, "pve-big")


@pytest.mark.parametrize("settled", [False, True], ids=["connection-dropped", "port-refusing"])
def test_pvetop_fails_over_when_the_node_it_talks_to_dies(homelab, settled):
    """pvetop's host list (every endpoint, as ``pvetop --demo`` passes them) carries the client
    through the loss of its node: the next read goes to the next host, where ``local`` differs."""
    with PveClient.connect(settings_from_sim_info(homelab.info)) as client:
        first = endpoint(homelab, "pve-mini1")
        assert client.active_host == f"127.0.0.1:{first['port']}"
        assert client.fetch_snapshot().node_by_name["pve-mini1"].status == "online"
        homelab.cluster.crash_node("pve-mini1")
        if settled:
            homelab.settle()
        snapshot = client.fetch_snapshot()
        assert snapshot.node_by_name["pve-mini1"].status == "offline"
        assert client.active_host == f"127.0.0.1:{endpoint(homelab, 'pve-mini2')['port']}"
        assert [e["name"] for e in client.get("cluster/status") if e.get("local")] == ["pve-mini2"]


def test_pvetop_write_fails_over_when_the_dead_nodes_port_refuses(homelab):
    """A write is only retried on the next host when the connection was never established (it
    cannot have reached the dead node): a refused port is such a case."""
    with PveClient.connect(settings_from_sim_info(homelab.info)) as client:
        homelab.cluster.crash_node("pve-mini1")
        homelab.settle()
        client.put("nodes/pve-mini2/config", description="written through pve-mini2")
        assert client.node_config("pve-mini2")["description"] == "written through pve-mini2"
        assert client.active_host == f"127.0.0.1:{endpoint(homelab, 'pve-mini2')['port']}"
