"""The console's pure parts: password hashes, the login throttle, the last hour's ring, and
`gateway console-hash-password`."""

from __future__ import annotations

import io
import sys

import pytest

from gateway.cli import main
from gateway.config import ConsoleAccount
from gateway.console.auth import (
    FIRST_DELAY_SECONDS,
    MAX_DELAY_SECONDS,
    LoginThrottle,
    hash_password,
    password_matches,
)
from gateway.console.charts import MINUTES, LastHour, svg_chart
from gateway.metrics import SENDS, WEBHOOKS


def account(password: str) -> ConsoleAccount:
    return ConsoleAccount.model_validate(
        {"name": "olivia", "role": "operator", "password_hash": hash_password(password)}
    )


def test_a_password_matches_only_its_hash() -> None:
    olivia = account("correct horse")
    assert password_matches(olivia, "correct horse")
    assert not password_matches(olivia, "correct horse ")
    assert not password_matches(None, "correct horse")  # an unknown account


def test_a_plain_password_in_the_config_is_refused() -> None:
    with pytest.raises(ValueError, match="argon2 hash"):
        ConsoleAccount.model_validate({"name": "o", "role": "agent", "password_hash": "hunter2"})


@pytest.mark.parametrize(
    ("failures", "delay"),
    [(0, 0.0), (1, FIRST_DELAY_SECONDS), (2, 2 * FIRST_DELAY_SECONDS), (20, MAX_DELAY_SECONDS)],
)
def test_the_delay_grows_with_failures(failures: int, delay: float) -> None:
    throttle = LoginThrottle()
    for _ in range(failures):
        throttle.failed("account:olivia", "address:10.0.0.1", now=100.0)
    assert throttle.delay("account:olivia", "address:127.0.0.1", now=101.0) == delay
    # Either key is enough: the same address trying another name waits too.
    assert throttle.delay("account:sam", "address:10.0.0.1", now=101.0) == delay


def test_failures_are_forgotten_after_a_success_or_a_quiet_while() -> None:
    throttle = LoginThrottle()
    throttle.failed("account:olivia", now=0.0)
    assert throttle.delay("account:olivia", now=10_000.0) == 0.0
    throttle.succeeded("account:olivia")
    assert throttle.delay("account:olivia", now=1.0) == 0.0


async def test_the_last_hour_counts_what_each_minute_added() -> None:
    async def backlog() -> int:
        return 7

    hour = LastHour(backlog)
    WEBHOOKS.labels("console-unit", "stored").inc(3)
    SENDS.labels("console-unit", "sent").inc(2)
    SENDS.labels("console-unit", "rate_limited").inc()
    await hour.tick()
    WEBHOOKS.labels("console-unit", "stored").inc()
    assert hour.sum("webhooks", "console-unit") == 4  # the minute under way counts too
    assert hour.sum("sends", "console-unit") == 2
    assert hour.sum("failures", "console-unit") == 1
    minutes = hour.minutes()
    assert len(minutes) == 2 and minutes[0].backlog == 7
    for _ in range(MINUTES + 5):
        await hour.tick()
    assert len(hour.minutes()) == MINUTES + 1  # the ring keeps an hour
    assert hour.sum("webhooks", "console-unit") == 0


def test_a_chart_is_one_polyline_with_escaped_title() -> None:
    drawn = svg_chart([0.0, 2.0, 1.0], 'sends "<x>"')
    assert drawn.count("<polyline") == 1 and "max 2" in drawn
    assert "<x>" not in drawn


def test_the_cli_hashes_the_password_on_stdin(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret-pass\n"))
    assert main(["console-hash-password"]) == 0
    printed = capsys.readouterr().out.strip()
    assert printed.startswith("$argon2id$") and "s3cret" not in printed
    hashed = ConsoleAccount.model_validate({"name": "o", "role": "agent", "password_hash": printed})
    assert password_matches(hashed, "s3cret-pass")
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["console-hash-password"]) == 2
