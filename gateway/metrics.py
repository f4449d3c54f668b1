"""Prometheus metrics, served on /metrics."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

WEBHOOKS = Counter(
    "gateway_webhooks_total", "Provider webhook requests by outcome", ["channel", "outcome"]
)
EVENTS = Counter("gateway_events_total", "Normalised events stored", ["channel", "type"])
INBOX_FAILED = Counter(
    "gateway_inbox_failed_total",
    "Raw requests, or parts of batched ones, that could not be parsed",
    ["channel"],
)
SENDS = Counter("gateway_sends_total", "Provider send attempts by outcome", ["channel", "outcome"])
BACKEND_DELIVERIES = Counter(
    "gateway_backend_deliveries_total", "Backend webhook posts by outcome", ["backend", "outcome"]
)
UNMATCHED_STATUSES = Counter(
    "gateway_unmatched_statuses_total",
    "Provider statuses that matched no message of this gateway after delivery.status_hold_seconds",
    ["channel"],
)
PROVIDER_LATENCY = Histogram(
    "gateway_provider_request_seconds", "Provider send API latency", ["channel"]
)
PRUNED = Counter(
    "gateway_retention_deleted_total", "Rows deleted by retention (storage.retention)", ["table"]
)
# Read from the store at each scrape (Store.backlog): alert on pending growing, on any failed
# or dead row, and on gateway_store_up == 0.
BACKLOG = Gauge(
    "gateway_backlog_rows",
    "Rows waiting per queue (inbox, send, webhook) and status, counted up to 100000",
    ["queue", "status"],
)
# Per lane (gateway/pipeline/lanes.py): which backend or channel is behind, and which waits.
LANE_PENDING = Gauge(
    "gateway_lane_pending_rows",
    "Rows waiting per queue (send, webhook) and target (channel, backend), counted up to 100000",
    ["queue", "target"],
)
LANE_PAUSED = Gauge(
    "gateway_lane_paused",
    "1 while a target's lane waits out a failure or its provider's Retry-After, else 0",
    ["queue", "target"],
)
STORE_UP = Gauge("gateway_store_up", "1 when the store answered the last scrape, else 0")
