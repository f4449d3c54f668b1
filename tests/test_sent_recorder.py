"""The sends that end together are recorded in one store operation (pipeline/recorder.py);
when it fails, each alone, so one the store refuses does not hold up the others."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.pipeline.recorder import SentRecorder
from gateway.pipeline.turn_batch import GATHER_TURNS
from gateway.store.sent import SentSend

from .store_events import status, targets


def send(n: int) -> SentSend:
    return SentSend(n, f"msg_{n}", "wa", [f"wamid.{n}"], None, status(f"wamid.{n}", "sent", None))


class Store:
    def __init__(self, together_fails: bool) -> None:
        self.together_fails = together_fails
        self.together: list[list[int]] = []
        self.alone: list[int] = []

    async def record_sent_together(self, sends: list[SentSend], *_args: Any) -> list[Any]:
        if self.together_fails:
            raise RuntimeError("one row the store refuses")
        self.together.append([s.outbox_id for s in sends])
        return []

    async def record_sent(self, outbox_id: int, *_args: Any) -> list[Any]:
        if outbox_id == 2:
            raise ValueError("refused")
        self.alone.append(outbox_id)
        return []


async def test_sends_that_end_together_are_one_operation() -> None:
    store = Store(together_fails=False)
    recorder = SentRecorder(store, targets, 1.0)  # type: ignore[arg-type]
    await asyncio.gather(*(recorder.record(send(n)) for n in (1, 2, 3)))
    await recorder.record(send(4))
    assert store.together == [[1, 2, 3], [4]] and store.alone == []


async def test_sends_that_end_over_the_next_turns_join_the_group() -> None:
    """Answers arrive over a few turns of the loop: the group waits while more keep coming."""
    store = Store(together_fails=False)
    recorder = SentRecorder(store, targets, 1.0)  # type: ignore[arg-type]

    async def ended_after(turns: int, n: int) -> None:
        for _ in range(turns):
            await asyncio.sleep(0)
        await recorder.record(send(n))

    await asyncio.gather(*(ended_after(n, n) for n in range(GATHER_TURNS)))
    assert store.together == [list(range(GATHER_TURNS))]
    # ... and no longer than that: a send ending later is the next group's.
    await asyncio.gather(*(ended_after(n * (GATHER_TURNS + 1), n) for n in (0, 1)))
    assert store.together[1:] == [[0], [1]]


async def test_a_failed_group_is_recorded_send_by_send() -> None:
    store = Store(together_fails=True)
    recorder = SentRecorder(store, targets, 1.0)  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(recorder.record(send(n)) for n in (1, 2, 3)), return_exceptions=True
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError)  # its own error, the others recorded
    assert sorted(store.alone) == [1, 3]


async def test_a_send_cancelled_while_its_group_is_written_leaves_the_others() -> None:
    store = Store(together_fails=False)
    recorder = SentRecorder(store, targets, 1.0)  # type: ignore[arg-type]
    first = asyncio.create_task(recorder.record(send(1)))
    second = asyncio.create_task(recorder.record(send(3)))
    await asyncio.sleep(0)
    first.cancel()
    await second
    with pytest.raises(asyncio.CancelledError):
        await first
    assert store.together == [[1, 3]]  # a send the provider accepted is recorded all the same
