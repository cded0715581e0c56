"""The simulator authenticates like PVE: tokens, tickets with CSRF and a 2 h lifetime, TLS.

Failures are checked on the wire (status line, empty body) because that is what clients see:
PVE sends 401s with an empty body and the message in the reason phrase (pve-http-server).
"""

from __future__ import annotations

import hashlib
import ipaddress
import ssl

import pytest
import requests
from cryptography import x509
from proxmoxer.backends.https import AuthenticationError

from pvetop.sim.runner import start_sim
from tests.sim.clients import call, password_api, raw, token_api

TICKET_LIFETIME = 2 * 3600


@pytest.fixture(scope="module")
def sim():
    """Shared by the tests that only read or write harmless node descriptions."""
    with start_sim(scenario="homelab", seed=1, manual_clock=True) as running:
        yield running


@pytest.fixture
def fresh_sim():
    """For tests that move the simulated clock."""
    with start_sim(scenario="homelab", seed=1, manual_clock=True) as running:
        yield running


def local_node(api) -> str:
    return next(e["name"] for e in api.cluster.status.get() if e["type"] == "node" and e.get("local"))


def fetch_ticket(info: dict, username: str | None = None, password: str | None = None) -> dict:
    response = raw(
        info,
        "POST",
        "/access/ticket",
        auth=False,
        data={"username": username or info["user"], "password": password or info["password"]},
    )
    assert response.status_code == 200, (response.status_code, response.reason)
    return response.json()["data"]


def ticket_request(info: dict, method: str, path: str, ticket: dict, *, csrf: bool = True, **kwargs):
    """A request authenticated by the ticket cookie, with or without the CSRF header."""
    headers = {"CSRFPreventionToken": ticket["CSRFPreventionToken"]} if csrf else {}
    return raw(info, method, path, auth=False, headers=headers, cookies={"PVEAuthCookie": ticket["ticket"]}, **kwargs)


def assert_unauthorized(response: requests.Response, reason: str | None = None) -> None:
    assert response.status_code == 401, (response.status_code, response.reason)
    assert response.content == b"", "PVE sends 401 with an empty body"
    assert response.reason, "PVE puts the 401 message in the reason phrase"
    if reason is not None:
        assert response.reason == reason


# --------------------------------------------------------------------------- happy paths


def test_token_auth_reads_and_writes_without_csrf(sim):
    api = token_api(sim.info)
    call(api, "GET", "/version")
    node = local_node(api)
    assert call(api, "PUT", f"/nodes/{node}/config", description="written with a token") is None
    assert call(api, "GET", f"/nodes/{node}/config")["description"] == "written with a token"


def test_password_auth_gets_a_ticket_and_writes_with_the_csrf_header(sim):
    api = password_api(sim.info)
    call(api, "GET", "/cluster/resources")
    node = local_node(api)
    assert call(api, "PUT", f"/nodes/{node}/config", description="written with a ticket") is None
    assert call(api, "GET", f"/nodes/{node}/config")["description"] == "written with a ticket"


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_tls_verification_can_be_switched_off(sim):
    assert call(token_api(sim.info, verify_ssl=False), "GET", "/version")


def test_tls_verification_against_the_sims_ca_file_succeeds(sim):
    assert call(token_api(sim.info, verify_ssl=sim.info["ca_file"]), "GET", "/version")


def test_tls_verification_against_system_cas_fails(sim, monkeypatch):
    for variable in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
        monkeypatch.delenv(variable, raising=False)
    with pytest.raises(requests.exceptions.SSLError):
        token_api(sim.info, verify_ssl=True).version.get()


def test_server_certificate_names_127_0_0_1_and_matches_the_fingerprint(sim):
    info = sim.info
    pem = ssl.get_server_certificate((info["host"], info["port"]))
    der = ssl.PEM_cert_to_DER_cert(pem)
    certificate = x509.load_der_x509_certificate(der)
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert ipaddress.ip_address("127.0.0.1") in names.get_values_for_type(x509.IPAddress)
    digest = hashlib.sha256(der).hexdigest().upper()
    assert info["fingerprint"] == ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))


# --------------------------------------------------------------------------- refusals


def test_no_credentials_is_401_no_ticket(sim):
    assert_unauthorized(raw(sim.info, "GET", "/cluster/resources", auth=False), "No ticket")


def test_wrong_password_is_401_authentication_failure(sim):
    response = raw(
        sim.info,
        "POST",
        "/access/ticket",
        auth=False,
        data={"username": sim.info["user"], "password": "not-the-password"},
    )
    assert_unauthorized(response, "authentication failure")
    with pytest.raises(AuthenticationError):
        password_api(dict(sim.info, password="not-the-password"))


def test_unknown_user_is_401_authentication_failure(sim):
    response = raw(
        sim.info,
        "POST",
        "/access/ticket",
        auth=False,
        data={"username": "nobody@pam", "password": sim.info["password"]},
    )
    assert_unauthorized(response, "authentication failure")


@pytest.mark.parametrize("part", ["token_value", "token_name", "user"])
def test_bad_token_is_401(sim, part):
    info = dict(sim.info, **{part: "bad" + sim.info[part][:3]})
    if part == "user":
        info["user"] = "nobody@pam"
    assert_unauthorized(raw(info, "GET", "/version"), "Authentication failed!")
    assert_unauthorized(raw(info, "GET", "/cluster/resources"), "Authentication failed!")


def test_malformed_token_header_is_401(sim):
    response = raw(sim.info, "GET", "/version", auth=False, headers={"Authorization": "PVEAPIToken=no-separators-here"})
    assert_unauthorized(response, "Authentication failed!")


def test_ticket_cookie_reads_without_csrf_but_writes_need_it(sim):
    info = sim.info
    ticket = fetch_ticket(info)
    node = local_node(token_api(info))
    assert ticket_request(info, "GET", "/cluster/resources", ticket, csrf=False).status_code == 200
    refused = ticket_request(info, "PUT", f"/nodes/{node}/config", ticket, csrf=False, data={"description": "no csrf"})
    assert_unauthorized(refused, "Permission denied - invalid csrf token")
    wrong_csrf = dict(ticket, CSRFPreventionToken=ticket["CSRFPreventionToken"][:-2] + "xx")
    refused = ticket_request(info, "PUT", f"/nodes/{node}/config", wrong_csrf, data={"description": "bad csrf"})
    assert_unauthorized(refused, "Permission denied - invalid csrf token")
    accepted = ticket_request(info, "PUT", f"/nodes/{node}/config", ticket, data={"description": "csrf ok"})
    assert accepted.status_code == 200
    assert accepted.json() == {"data": None}


def test_tampered_ticket_is_401(sim):
    ticket = fetch_ticket(sim.info)
    tampered = dict(ticket, ticket=ticket["ticket"].replace(sim.info["user"], "intruder@pam"))
    assert_unauthorized(ticket_request(sim.info, "GET", "/cluster/resources", tampered), "Authentication failed!")


def test_ticket_expires_after_two_hours_of_simulated_time_unless_renewed(fresh_sim):
    info = fresh_sim.info
    original = fetch_ticket(info)
    fresh_sim.cluster.step(TICKET_LIFETIME / 2)
    renewed = fetch_ticket(info, password=original["ticket"])
    assert renewed["ticket"] != original["ticket"]
    fresh_sim.cluster.step(TICKET_LIFETIME / 2 - 60)
    assert ticket_request(info, "GET", "/version", original).status_code == 200
    fresh_sim.cluster.step(61)
    assert_unauthorized(ticket_request(info, "GET", "/version", original))
    assert ticket_request(info, "GET", "/version", renewed).status_code == 200


def read_only_requester(info: dict, via: str):
    """Requests as the sim's read-only identity (Sys.Audit, VM.Audit, Datastore.Audit)."""
    if via == "ticket":
        reader = fetch_ticket(info, username=info["readonly_user"], password=info["readonly_password"])
        return lambda method, path, **kw: ticket_request(info, method, path, reader, **kw)
    token_info = dict(
        info,
        user=info["readonly_user"],
        token_name=info["readonly_token_name"],
        token_value=info["readonly_token_value"],
    )
    return lambda method, path, **kw: raw(token_info, method, path, **kw)


@pytest.mark.parametrize("via", ["ticket", "token"])
def test_read_only_identity_may_read_but_writing_is_403(sim, via):
    info = sim.info
    request = read_only_requester(info, via)
    assert request("GET", "/cluster/resources").status_code == 200
    resources = token_api(info).cluster.resources.get()
    guest = next(r for r in resources if r["type"] in ("qemu", "lxc") and r["status"] == "running")
    target = next(r["node"] for r in resources if r["type"] == "node" and r["node"] != guest["node"])
    response = request(
        "POST",
        f"/nodes/{guest['node']}/{guest['type']}/{guest['vmid']}/migrate",
        data={"target": target, "online": 1, "restart": 1},
    )
    assert response.status_code == 403, (response.status_code, response.reason)
    assert response.reason == f"Permission check failed (/vms/{guest['vmid']}, VM.Migrate)"
    response = request("POST", f"/nodes/{target}/status", data={"command": "shutdown"})
    assert response.status_code == 403
    assert response.reason == f"Permission check failed (/nodes/{target}, Sys.PowerMgmt)"
    assert (
        next(r for r in token_api(info).cluster.resources.get(type="vm") if r["vmid"] == guest["vmid"])["node"]
        == guest["node"]
    )
