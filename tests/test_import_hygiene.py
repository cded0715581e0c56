"""Run-time guard for the layering the import-linter contracts check statically.

The contracts read the static import graph, so they cannot tell a module-level import from one
deferred into the function that needs it (the dashboard's Textual imports in ``cli/dashboard.py``
are deferred on purpose). These tests import the real thing in a fresh interpreter and look at
``sys.modules``: the automation and the CLI must run headless, with no Textual and, for the pure
core, no database either.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

TUI = ("textual", "rich")
DATABASE = ("peewee", "playhouse")


def _loaded_after(statement: str, candidates: tuple[str, ...]) -> list[str]:
    probe = f"{statement}\nimport sys\nprint(','.join(m for m in {candidates!r} if m in sys.modules))\n"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    return [name for name in result.stdout.strip().split(",") if name]


@pytest.mark.parametrize(
    "statement",
    [
        "import pvetop.policy",
        "import pvetop.policy.placement, pvetop.policy.constraints, pvetop.policy.metrics",
        "import pvetop.model",
    ],
)
def test_the_pure_core_loads_no_tui_and_no_database(statement: str) -> None:
    leaked = _loaded_after(statement, TUI + DATABASE)
    assert not leaked, f"{statement!r} imported {leaked}"


@pytest.mark.parametrize(
    "statement",
    [
        "import pvetop.engine",
        "import pvetop.engine.migrations, pvetop.engine.evacuation",
        "import pvetop.pve",
        "import pvetop.store",
        "import pvetop.sim.runner",
        "import pvetop.cli",
        "from pvetop.cli import build_parser; build_parser()",
    ],
)
def test_headless_rooms_load_no_tui(statement: str) -> None:
    leaked = _loaded_after(statement, TUI)
    assert not leaked, f"{statement!r} imported {leaked}"


def test_the_engine_loads_no_database_until_it_journals() -> None:
    """The engine is handed an open store; importing it must not pull peewee in."""
    leaked = _loaded_after("import pvetop.engine", DATABASE)
    assert not leaked, f"'import pvetop.engine' imported {leaked}"


def test_the_dashboard_still_loads_textual_when_it_opens() -> None:
    """The other half of the deferral: the path that needs Textual gets it."""
    assert _loaded_after("from pvetop.ui.app import PvetopApp", TUI) == list(TUI)


def test_no_module_uses_textuals_private_api() -> None:
    """Textual's ``textual._*`` modules change without notice between releases: pvetop keeps to
    its public API (a private import would break on the next upgrade, or silently misbehave)."""
    package = Path(__file__).resolve().parent.parent / "pvetop"
    private = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
            else:
                continue
            private += [f"{path.relative_to(package.parent)}:{node.lineno} {name}" for name in names if _private(name)]
    assert private == []


def _private(module: str) -> bool:
    parts = module.split(".")
    return parts[0] == "textual" and any(part.startswith("_") for part in parts[1:])
