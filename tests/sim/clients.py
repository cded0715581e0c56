"""Talk to a running simulator the way real PVE clients do, and check every answer.

Shared by the conformance, auth and ProxLB peer tests: proxmoxer over HTTPS with the sim's CA for
normal calls, plain ``requests`` where a test needs the raw status line, headers or body.
"""

from __future__ import annotations

from typing import Any

import requests
from proxmoxer import ProxmoxAPI

from tests.pve_schema import check_response

API_PREFIX = "/api2/json"


def api_url(info: dict, path: str) -> str:
    return f"https://{info['host']}:{info['port']}{API_PREFIX}{path}"


def token_header(info: dict) -> dict[str, str]:
    """PVE's token header: ``PVEAPIToken=USER@REALM!TOKENID=SECRET``."""
    return {"Authorization": f"PVEAPIToken={info['user']}!{info['token_name']}={info['token_value']}"}


def token_api(info: dict, **options: Any) -> ProxmoxAPI:
    """proxmoxer with API-token auth, verifying TLS against the sim's CA unless told otherwise."""
    options.setdefault("verify_ssl", info["ca_file"])
    options.setdefault("timeout", 15)
    return ProxmoxAPI(
        info["host"],
        port=info["port"],
        user=info["user"],
        token_name=info["token_name"],
        token_value=info["token_value"],
        **options,
    )


def password_api(info: dict, **options: Any) -> ProxmoxAPI:
    """proxmoxer with user/password auth: it fetches a ticket and sends CSRF headers on writes."""
    options.setdefault("verify_ssl", info["ca_file"])
    options.setdefault("timeout", 15)
    return ProxmoxAPI(info["host"], port=info["port"], user=info["user"], password=info["password"], **options)


def raw(info: dict, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> requests.Response:
    """One plain HTTPS request (token auth unless ``auth=False``), for status lines and headers."""
    headers = dict(token_header(info)) if auth else {}
    headers.update(kwargs.pop("headers", {}))
    kwargs.setdefault("verify", info["ca_file"])
    kwargs.setdefault("timeout", 15)
    return requests.request(method, api_url(info, path), headers=headers, **kwargs)


def call(api: ProxmoxAPI, method: str, path: str, **params: Any) -> Any:
    """Call ``method path`` through proxmoxer and fail the test if the answer breaks the schema."""
    resource = api(path.lstrip("/"))
    data = getattr(resource, method.lower())(**params)
    violations = check_response(method, path, data)
    assert violations == [], f"{method} {path} does not match the PVE schema:\n" + "\n".join(violations)
    return data
