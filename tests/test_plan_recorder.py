"""First sends' plans made together are recorded in one store operation
(pipeline/plan_recorder.py); when it fails, each alone, so one the store refuses fails only
its own send."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateway.downgrade import Choice
from gateway.pipeline.plan_recorder import PlanRecorder
from gateway.store.plans import Plan

CHOICES = [Choice(1, "Got it", "ROAD_OK")]


def plan(n: int) -> Plan:
    return Plan(f"msg_{n}", "sms", f"+1415555010{n}", ["buttons → numbered_text"], CHOICES, 60.0)


class Store:
    def __init__(self, together_fails: bool) -> None:
        self.together_fails = together_fails
        self.together: list[list[str]] = []
        self.alone: list[str] = []

    async def record_plans_together(self, plans: list[Plan], _now: float) -> None:
        if self.together_fails:
            raise RuntimeError("one row the store refuses")
        self.together.append([p.message_id for p in plans])

    async def record_plan(self, message_id: str, *_args: Any) -> None:
        if message_id == "msg_2":
            raise ValueError("refused")
        self.alone.append(message_id)


async def test_plans_made_together_are_one_operation() -> None:
    store = Store(together_fails=False)
    recorder = PlanRecorder(store)  # type: ignore[arg-type]
    await asyncio.gather(*(recorder.record(plan(n)) for n in (1, 2, 3)))
    await recorder.record(plan(4))
    assert store.together == [["msg_1", "msg_2", "msg_3"], ["msg_4"]]
    assert store.alone == []


async def test_a_failed_group_is_recorded_plan_by_plan() -> None:
    store = Store(together_fails=True)
    recorder = PlanRecorder(store)  # type: ignore[arg-type]
    results = await asyncio.gather(
        *(recorder.record(plan(n)) for n in (1, 2, 3)), return_exceptions=True
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], ValueError)
    assert sorted(store.alone) == ["msg_1", "msg_3"]


@pytest.mark.parametrize("fails", [False, True])
async def test_an_empty_loop_turn_writes_nothing(fails: bool) -> None:
    store = Store(together_fails=fails)
    PlanRecorder(store)  # type: ignore[arg-type]
    await asyncio.sleep(0)
    assert store.together == [] and store.alone == []
