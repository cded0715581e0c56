"""Hostile servers for the security tests: a real-looking cluster, an impostor, a diverting proxy."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.hostile import DivertingProxy, HostileServer, data


@pytest.fixture
def hostile(tmp_path) -> Iterator[HostileServer]:
    """The cluster pvetop means to talk to (its answers are scripted per test)."""
    with HostileServer(tmp_dir=tmp_path) as server:
        yield server


@pytest.fixture
def impostor(tmp_path) -> Iterator[HostileServer]:
    """Another server with its own CA and certificate, answering a cluster named "impostor"."""
    with HostileServer(tmp_dir=tmp_path) as server:
        server.set("cluster/status", data([{"type": "cluster", "name": "impostor", "quorate": 1}]))
        yield server


@pytest.fixture
def diverting_proxy(impostor, monkeypatch) -> Iterator[DivertingProxy]:
    """HTTPS_PROXY and https_proxy set to a CONNECT proxy that tunnels everything to the impostor."""
    with DivertingProxy(("127.0.0.1", impostor.port)) as proxy:
        for name in ("NO_PROXY", "no_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", proxy.url)
        monkeypatch.setenv("https_proxy", proxy.url)
        yield proxy
