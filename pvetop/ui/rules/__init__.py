"""Pins, locks, reservations and node power settings in the dashboard.

``install_rules(app, store)`` is the one hook: it gives the detail panes their rules panels,
keeps ``app.ruleset`` (the tables' P/L/R/M markers) in step with the store, and binds the
app-wide keys: ``j`` journal, ``c`` reconcile rules with the cluster, ``i`` suggested pins.
"""

from __future__ import annotations

from pvetop.store import Store
from pvetop.ui.rules.controller import RulesController
from pvetop.ui.rules.journal import JournalScreen
from pvetop.ui.rules.panels import GuestRulesPanel, NodeRulesPanel
from pvetop.ui.rules.review import ReconcileDialog, SuggestionsDialog

SCREENS = {"rules-journal": JournalScreen, "rules-reconcile": ReconcileDialog, "rules-suggestions": SuggestionsDialog}
KEYS = (
    ("j", "rules-journal", "Journal"),
    ("c", "rules-reconcile", "Reconcile"),
    ("i", "rules-suggestions", "Pin hints"),
)


def install_rules(app, store: Store) -> RulesController:
    """Call once, before ``app.run()``; the app keeps using ``store`` until it exits."""
    app.store = store
    app.detail_panels["guest"].append(GuestRulesPanel)
    app.detail_panels["node"].append(NodeRulesPanel)
    controller = RulesController(app, store)
    app.watch(app, "latest", controller.on_refresh, init=False)
    for name, screen in SCREENS.items():
        app.install_screen(screen(), name)
    for key, name, description in KEYS:
        app.add_app_binding(key, f"push_screen('{name}')", description)
    return controller


__all__ = ["RulesController", "install_rules"]
