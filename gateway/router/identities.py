"""Which user an inbound sender's identity joins by phone, and what a merge keeps: decisions,
free of I/O, that the store applies in the transaction of the event (docs/users.md).

An address is not a phone number: WhatsApp may name a person by a business-scoped id
(`US.13491208655302741918`), Messenger and LINE by ids of their own. A phone counts only where
the provider sent one as the sender's own number, and only on the channels where that number
is how the provider reaches the person.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# WhatsApp's `from`/`wa_id` and Twilio's `From` are the person's number: Meta verified it at
# registration, the carrier delivered from it (providers.md §1.1, §3). Other channels send none.
LINKABLE_BY_PHONE = frozenset({"whatsapp", "sms"})

# ITU-T E.164: a plus, a country code not starting with 0, at most 15 digits in all. A
# business-scoped id, a short code or an alphanumeric sender is not one.
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


@dataclass(frozen=True)
class PhoneIdentity:
    """An identity already linked to a user, found by its phone."""

    channel_type: str
    user_id: str


def verified_phone(channel_type: str, phone: str | None) -> str | None:
    """`phone` if it can link identities: an E.164 number from a channel that sends one."""
    if channel_type not in LINKABLE_BY_PHONE or phone is None or not _E164.match(phone):
        return None
    return phone


def user_to_link_by_phone(
    channel_type: str, phone: str | None, same_phone: Sequence[PhoneIdentity]
) -> str | None:
    """The user an unlinked sender joins: the one user whose WhatsApp or SMS identities share
    its verified phone. None when it has no such phone, or when the number is linked to
    several users (a shared phone: which of them wrote is not for the gateway to guess)."""
    if verified_phone(channel_type, phone) is None:
        return None
    users = {i.user_id for i in same_phone if i.channel_type in LINKABLE_BY_PHONE}
    return users.pop() if len(users) == 1 else None


@dataclass(frozen=True)
class UserFacts:
    external_id: str | None
    name: str | None
    locale: str | None
    metadata: Mapping[str, Any] | None
    country: str | None = None
    preferred_channel: str | None = None


def merged_facts(survivor: UserFacts, merged: UserFacts) -> UserFacts:
    """What the surviving user keeps: its own values, and the merged user's where it has none.
    Metadata merges key by key, the survivor's keys winning."""
    metadata = {**(merged.metadata or {}), **(survivor.metadata or {})}
    return UserFacts(
        external_id=survivor.external_id or merged.external_id,
        name=survivor.name or merged.name,
        locale=survivor.locale or merged.locale,
        metadata=metadata or None,
        country=survivor.country or merged.country,
        preferred_channel=survivor.preferred_channel or merged.preferred_channel,
    )
