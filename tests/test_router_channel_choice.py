"""The pure choice of a user's identity (gateway/router/channel_choice.py), as a table."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gateway.router.channel_choice import Reachable, route, user_country
from gateway.router.countries import country_of_phone

NOW = 1_800_000_000.0
HOUR = 3600.0
ORDER = {
    "JP": ["line", "sms"],
    "UA": ["viber", "sms"],
    "US": ["sms"],
    "default": ["whatsapp", "sms"],
}

LINE = Reachable("line-jp", "line", "U4af4980629")
SMS = Reachable("sms-main", "sms", "+819012345678", phone="+819012345678")
WA = Reachable("wa-main", "whatsapp", "819012345678", phone="+819012345678", window_hours=24)
VIBER = Reachable("vb-main", "viber", "01234567890A=")


def order(identities: list[Reachable], **options: object) -> list[tuple[str, str]]:
    settings: dict[str, object] = {
        "preferred": None, "country": None, "channel_order": ORDER, "now": NOW, **options,
    }  # fmt: skip
    decided = route(identities, **settings)  # type: ignore[arg-type]
    return [(p.channel_id, p.reason) for p in decided.picks]


CASES = [
    pytest.param(
        [SMS, LINE], {"country": "JP"},
        [("line-jp", "channel_order JP"), ("sms-main", "channel_order JP")],
        id="japan: LINE, then SMS",
    ),
    pytest.param(
        [SMS, VIBER], {"country": "UA"},
        [("vb-main", "channel_order UA"), ("sms-main", "channel_order UA")],
        id="ukraine: Viber, then SMS",
    ),
    pytest.param(
        [WA, SMS], {"country": "FR"},
        [("wa-main", "channel_order default"), ("sms-main", "channel_order default")],
        id="a country without an order: the default",
    ),
    pytest.param(
        [SMS, LINE], {"country": "JP", "preferred": "sms"},
        [("sms-main", "preferred_channel"), ("line-jp", "channel_order JP")],
        id="the user's preference (a type) comes before the country",
    ),
    pytest.param(
        [SMS, LINE], {"country": "JP", "preferred": "sms-main"},
        [("sms-main", "preferred_channel"), ("line-jp", "channel_order JP")],
        id="a preference may name the instance",
    ),
    pytest.param(
        [SMS, replace(WA, last_inbound_at=NOW - 2 * HOUR), LINE],
        {"country": "JP", "preferred": "line"},
        [
            ("wa-main", "last_inbound (2.0 h ago, window open)"),
            ("line-jp", "preferred_channel"),
            ("sms-main", "channel_order JP"),
        ],
        id="where they last wrote, window open, comes first",
    ),
    pytest.param(
        [SMS, replace(WA, last_inbound_at=NOW - 25 * HOUR), LINE], {"country": "JP"},
        [("line-jp", "channel_order JP"), ("sms-main", "channel_order JP"),
         ("wa-main", "other identity")],
        id="a closed window is no reason",
    ),
    pytest.param(
        [replace(SMS, last_inbound_at=NOW - 23 * HOUR), replace(LINE, last_inbound_at=NOW - HOUR)],
        {"country": "JP"},
        [("line-jp", "last_inbound (1.0 h ago, window open)"), ("sms-main", "channel_order JP")],
        id="the most recent of the open ones",
    ),
    pytest.param(
        [VIBER], {"country": "US"}, [("vb-main", "other identity")],
        id="identities outside the order are tried last, not dropped",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("identities", "options", "expected"), CASES)
def test_order(
    identities: list[Reachable], options: dict[str, object], expected: list[tuple[str, str]]
) -> None:
    assert order(identities, **options) == expected


def test_opted_out_and_ruled_out_identities_are_skipped_with_the_reason() -> None:
    decided = route(
        [LINE, replace(SMS, opted_out=True), WA],
        preferred=None,
        country="JP",
        channel_order=ORDER,
        now=NOW,
        ruled_out={"line-jp": "strict adaptation refused: carousel → text"},
    )
    assert [(p.channel_id, p.reason) for p in decided.picks] == [("wa-main", "other identity")]
    assert [(p.channel_id, p.reason) for p in decided.skipped] == [
        ("line-jp", "strict adaptation refused: carousel → text"),
        ("sms-main", "opted out"),
    ]


def test_one_channel_instance_once() -> None:
    other = Reachable("sms-main", "sms", "+819099999999")
    assert order([SMS, other], country="JP") == [("sms-main", "channel_order JP")]


def test_no_identities_no_picks() -> None:
    assert order([], country="JP") == []


@pytest.mark.parametrize(
    ("phone", "country"),
    [
        ("+819012345678", "JP"),
        ("+380501234567", "UA"),
        ("+447700900123", "GB"),
        ("+4915123456789", "DE"),
        ("+16505551234", None),  # +1: the US, Canada and the Caribbean share it
        ("+79161234567", None),  # +7: Russia and Kazakhstan
        ("819012345678", None),  # not E.164
        (None, None),
    ],
)
def test_country_of_phone(phone: str | None, country: str | None) -> None:
    assert country_of_phone(phone) == country


def test_the_users_own_country_comes_before_a_phone() -> None:
    assert user_country("UA", [SMS]) == ("UA", "country")
    assert user_country(None, [LINE, SMS]) == ("JP", "phone of sms-main")
    assert user_country(None, [LINE]) == (None, "unknown")
