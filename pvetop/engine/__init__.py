"""Async workers that turn policy decisions into API calls and journal entries."""
