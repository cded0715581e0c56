"""Migrations in the dashboard: the migrate, bulk-migrate and evacuate dialogs, the tasks pane."""

from pvetop.ui.migrate.mixin import MIGRATION_BINDINGS, JobUpdated, MigrationsMixin

__all__ = ["MIGRATION_BINDINGS", "JobUpdated", "MigrationsMixin"]
