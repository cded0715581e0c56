"""The ``--fingerprint`` pin holds on every path: direct, through a CONNECT proxy, on failover, at login.

The proxy here diverts every tunnel to an impostor with its own certificate: the pin (or the CA)
must refuse it before any credential is sent, and the error must name the fingerprint the
impostor presented on that path, not the one the real server would have shown.
"""

from __future__ import annotations

import pytest

from pvetop.errors import ConnectionFailed
from pvetop.pve import PveClient
from tests.hostile import PASSWORD, TOKEN_SECRET
from tests.pve.connection import closed_port


def _assert_nothing_reached(impostor) -> None:
    for seen in impostor.requests:
        assert TOKEN_SECRET not in str(seen.headers) and PASSWORD.encode() not in seen.body
    assert impostor.requests == []


def test_direct_connection_to_an_impostor_is_refused_by_the_pin(hostile, impostor):
    settings = hostile.settings(pin=True, hosts=(("127.0.0.1", impostor.port),))
    with pytest.raises(ConnectionFailed) as refused:
        PveClient.connect(settings)
    assert f"expected {hostile.fingerprint}" in refused.value.message
    assert f"presented {impostor.fingerprint}" in refused.value.message
    _assert_nothing_reached(impostor)


def test_pin_holds_through_a_connect_proxy(hostile, impostor, diverting_proxy):
    with pytest.raises(ConnectionFailed) as refused:
        PveClient.connect(hostile.settings(pin=True))
    assert diverting_proxy.asked == [f"127.0.0.1:{hostile.port}"]  # the request did go through the proxy
    assert f"presented {impostor.fingerprint}" in refused.value.message
    _assert_nothing_reached(impostor)


def test_pin_holds_for_the_login_through_a_connect_proxy(hostile, impostor, diverting_proxy):
    settings = hostile.settings(pin=True, token_name=None, token_value=None, password=PASSWORD)
    with pytest.raises(ConnectionFailed) as refused:
        PveClient.connect(settings)
    assert f"presented {impostor.fingerprint}" in refused.value.message
    assert diverting_proxy.asked
    _assert_nothing_reached(impostor)


def test_pin_holds_on_failover_to_the_next_host(hostile, impostor):
    hosts = (("127.0.0.1", closed_port()), ("127.0.0.1", impostor.port))
    with pytest.raises(ConnectionFailed) as refused:
        PveClient.connect(hostile.settings(pin=True, hosts=hosts))
    assert f"presented {impostor.fingerprint}" in refused.value.message
    _assert_nothing_reached(impostor)


def test_ca_failure_through_a_proxy_names_the_certificate_the_proxy_path_presented(hostile, impostor, diverting_proxy):
    with pytest.raises(ConnectionFailed) as refused:
        PveClient.connect(hostile.settings())
    assert "certificate verify failed" in refused.value.message
    assert impostor.fingerprint in refused.value.message and hostile.fingerprint not in refused.value.message
    _assert_nothing_reached(impostor)


def test_the_pinned_server_is_reached_through_an_honest_proxy(hostile, monkeypatch):
    from tests.hostile import DivertingProxy

    with DivertingProxy(("127.0.0.1", hostile.port)) as honest:
        for name in ("NO_PROXY", "no_proxy"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("HTTPS_PROXY", honest.url)
        with PveClient.connect(hostile.settings(pin=True)) as client:
            assert client.fetch_snapshot().cluster_name == "hostile"
        assert honest.asked
