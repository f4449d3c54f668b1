"""Routing decisions: pure functions of what the store knows, which the store then persists."""
