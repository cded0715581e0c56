"""Errors the simulated API answers with, carrying Proxmox VE's status code and text."""

from __future__ import annotations

from pvetop.errors import UsageError


class PveApiError(Exception):
    """One failed API call, as pve-api-daemon reports it.

    ``status`` is the HTTP code (400, 401, 403, 500, 501, 595), ``message`` PVE's text (shown in
    the status line and, for JSON error bodies, as ``message`` with a trailing newline) and
    ``errors`` the per-parameter map of a 400 ``Parameter verification failed.``.
    """

    def __init__(self, status: int, message: str, errors: dict[str, str] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors


def param_error(errors: dict[str, str]) -> PveApiError:
    """PVE's 400 answer for bad parameters: a fixed message plus the per-parameter map."""
    return PveApiError(400, "Parameter verification failed.", errors)


class ScenarioError(UsageError):
    """A scenario name or data file that cannot be used (exit code 2)."""
