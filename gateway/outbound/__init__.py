"""Outbound HTTP to providers: the one client, rate limits, pauses and the exchange log."""
