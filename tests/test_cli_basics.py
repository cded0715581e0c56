"""The CLI's own contract: --help teaches, bad arguments exit 2 with one line, never a traceback."""

import subprocess
import sys


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pvetop", *args], capture_output=True, text=True, timeout=60)


def test_help_lists_commands_and_examples():
    result = run_cli("--help")
    assert result.returncode == 0
    assert "pvetop --demo" in result.stdout
    assert "exit codes" in result.stdout


def test_unknown_option_is_a_usage_error_without_traceback():
    result = run_cli("--no-such-option")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "unrecognized arguments" in result.stderr
