"""The Textual user interface: reads snapshots, sends intents."""
