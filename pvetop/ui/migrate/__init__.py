"""Migrations in the dashboard: the migrate, bulk-migrate and evacuate dialogs, the tasks pane,
and the controller the app holds for them."""

from textual.binding import Binding

from pvetop.ui.migrate.controller import MigrationsController

# The app lists these in its own BINDINGS and runs them through ``MigrationsController``.
MIGRATION_BINDINGS = [
    Binding("m", "migrate", "Migrate", id="guest.migrate", tooltip="Migrate the selected guest"),
    Binding("space", "tag", "Tag for bulk move", show=False, id="guest.tag", tooltip="Tag / untag the selected guest"),
    Binding("e", "evacuate", "Evacuate node", id="node.evacuate", tooltip="Evacuate a node"),
    Binding("t", "tasks", "Tasks", id="app.tasks", tooltip="Tasks"),
]

__all__ = ["MIGRATION_BINDINGS", "MigrationsController"]
