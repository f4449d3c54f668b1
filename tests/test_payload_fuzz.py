"""Fuzz: any mutation of a channel's documented payloads (tests/fuzzing.py) is read into events
a backend can be sent, or refused with a plain reason, by ingress, the normaliser and
`gateway normalize` alike. A short run per channel here; `python bench/fuzz.py` runs long."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzzing import CHANNELS, adapter_for, check_body, mutated_bodies


@pytest.mark.parametrize("channel", CHANNELS)
@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data())
def test_a_mutated_payload_is_read_or_refused_plainly(
    channel: str, data: Any, tmp_path: Path
) -> None:
    body = data.draw(mutated_bodies(channel), label="body")
    outcome = check_body(adapter_for(channel), body, tmp_path / f"{channel}.body")
    # A payload refused with a reason yields no events: nothing half-read reaches a backend.
    assert outcome.reason is None or outcome.events == 0
