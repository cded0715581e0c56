"""The static gates, run with the tests so the README's test command (and CI) enforces them.

ruff (lint, import order, format), mypy (strict for ``policy/``, ``model.py`` and ``pve/``) and
import-linter's contracts (the layering) are configured in ``pyproject.toml``; each test runs one
tool on the repository and fails with the tool's own report.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def _run(*command: str) -> None:
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        report = (result.stdout + result.stderr).strip()
        pytest.fail(f"{' '.join(command)} failed:\n{report}", pytrace=False)


def _mypy_cache() -> Path:
    """Incremental runs need a cache; keep it inside the venv (never committed), else in /tmp."""
    if sys.prefix != sys.base_prefix:
        return Path(sys.prefix) / ".mypy_cache"
    return Path(tempfile.gettempdir()) / f"pvetop-mypy-cache-{os.getuid()}"


def test_ruff_lint() -> None:
    _run(sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format=concise", ".")


def test_ruff_format() -> None:
    _run(sys.executable, "-m", "ruff", "format", "--no-cache", "--check", ".")


def test_mypy() -> None:
    _run(sys.executable, "-m", "mypy", "--cache-dir", str(_mypy_cache()), "--no-error-summary")


def test_import_contracts() -> None:
    _run(str(BIN / "lint-imports"), "--no-cache")
