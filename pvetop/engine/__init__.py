"""Async workers that turn policy decisions into API calls and journal entries.

``migrations.MigrationExecutor`` runs planned moves within concurrency limits and tracks their
tasks; ``evacuation`` prepares and runs the emptying of a node. Both are plain asyncio, shared by
the Textual app and the CLI.
"""
