"""`pvetop` dashboard options: bad values are one-line usage errors before anything starts."""

from __future__ import annotations

import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pvetop", *args], capture_output=True, text=True, timeout=60)


def test_help_documents_the_dashboard_options():
    result = run_cli("--help")
    for option in ("--demo", "--read-only", "--interval", "--theme"):
        assert option in result.stdout


def test_bad_interval_is_a_usage_error():
    result = run_cli("--demo", "--interval", "0")
    assert result.returncode == 2
    assert result.stderr.strip() == "pvetop: error: --interval 0: give between 0.2 and 3600 seconds"


def test_unknown_theme_lists_the_known_ones():
    result = run_cli("--demo", "--theme", "no-such-theme")
    assert result.returncode == 2
    assert "unknown theme" in result.stderr and "nord" in result.stderr and "Traceback" not in result.stderr


def test_unknown_demo_scenario_is_a_usage_error():
    result = run_cli("--demo", "no-such-scenario")
    assert result.returncode == 2
    assert "unknown scenario" in result.stderr and "homelab" in result.stderr and "Traceback" not in result.stderr
