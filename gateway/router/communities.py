"""Communities: relay conversations people join and leave themselves (docs/communities.md).
Decisions free of I/O; gateway/store/communities.py applies them in the event's transaction.

- Which keyword a text is (`JOIN SUSHI`, `LEAVE SUSHI`, `NAME Kenji`): case-insensitive, the
  spaces trimmed and collapsed.
- Whether a member's message is relayed: not while muted, not over their rate limit (a token
  bucket), and, with a moderation webhook, only once it allows it.
- What a member is told, at most once a `NOTICE_SECONDS` for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

KeywordAction = Literal["join", "leave", "name"]
Verdict = Literal["allow", "hold", "reject"]

# Longer texts are conversation, not keywords: no store lookup is spent on them.
MAX_KEYWORD_TEXT = 160
# A `name` keyword is the first one or two words of the text; the rest is the name.
NAME_PREFIX_WORDS = (1, 2)
MAX_DISPLAY_NAME = 64
# A refused member hears why once a minute at most, however fast they write: a notice per
# message would answer a flood with a flood (and cost an SMS each).
NOTICE_SECONDS = 60.0


def collapsed(text: str) -> str:
    """`text` trimmed, each run of spaces one space. split() and join, not a whitespace regex:
    the same whitespace (both go by str.isspace), at a fifth of the cost, and every inbound
    text is looked up (bench/normalise_instructions.py: 22k instructions a message)."""
    return " ".join(text.split())


def phrase(text: str) -> str:
    """A keyword as compared: trimmed, spaces collapsed, case folded (`join  sushi ` → `JOIN
    SUSHI`). Upper case, not casefold: `ß` stays one letter a person can type back."""
    return collapsed(text).upper()


def reserved_words() -> frozenset[str]:
    """Words no community keyword may start with: SMS opt-out and opt-in keywords (Twilio's
    list, adapters/sms.py) and HELP. They stay global and win over any community."""
    from adapters.sms import OPT_IN, OPT_OUT  # the adapters import the schema, which calls this

    return OPT_OUT | OPT_IN | {"HELP", "INFO"}


def candidate_phrases(text: str) -> list[str]:
    """What to look a text up by: itself whole (join, leave), and its first one and two words
    (a `name` keyword followed by the name). Empty for a text too long to be a keyword."""
    if not text or len(text) > MAX_KEYWORD_TEXT:
        return []
    whole = phrase(text)
    words = whole.split(" ")
    found = [whole] + [" ".join(words[:n]) for n in NAME_PREFIX_WORDS if len(words) > n]
    return list(dict.fromkeys(found))


@dataclass(frozen=True)
class KeywordRow:
    """A keyword as stored: its phrase, the community, what it does, its language."""

    phrase: str
    community_id: str
    action: KeywordAction
    language: str


@dataclass(frozen=True)
class KeywordHit:
    community_id: str
    action: KeywordAction
    language: str
    argument: str = ""  # the chosen name, for `name`


def keyword_hits(text: str, rows: Sequence[KeywordRow]) -> list[KeywordHit]:
    """The keywords `text` is, among the `rows` its candidate phrases found: join and leave
    only when the text is the phrase whole; `name` when the text starts with it and goes on
    with a name (for each community with that keyword)."""
    if not rows:  # nearly every text: no keyword found, nothing to compare
        return []
    whole = phrase(text)
    hits = []
    for row in rows:
        if row.action != "name":
            if row.phrase == whole:
                hits.append(KeywordHit(row.community_id, row.action, row.language))
            continue
        rest = whole[len(row.phrase) :].strip() if whole.startswith(row.phrase + " ") else ""
        if rest:
            # The name as typed (its case), not as compared.
            typed = collapsed(text)
            name = typed[len(typed) - len(rest) :].strip()[:MAX_DISPLAY_NAME]
            hits.append(KeywordHit(row.community_id, "name", row.language, name))
    return hits


def given_name(taken: set[str], draw: Callable[[int], int]) -> str:
    """A name for a member who chose none: `Member 4821`, four digits drawn at random (never
    from their number or id), not one a present member holds. `draw(n)` is 0..n-1."""
    for _ in range(50):
        name = f"Member {1000 + draw(9000)}"
        if name.casefold() not in taken:
            return name
    return f"Member {10000 + draw(90000)}"  # a crowded community: five digits


def name_taken(name: str, taken: set[str]) -> bool:
    """`taken` holds the present members' names, case-folded."""
    return name.casefold() in taken


@dataclass(frozen=True)
class Bucket:
    """A member's rate-limit tokens at a time: one token per message, refilled evenly at
    `per_minute` a minute, never above `per_minute` (so a burst of that many is allowed)."""

    tokens: float
    at: float


def take_token(bucket: Bucket, per_minute: int | None, now: float) -> tuple[bool, Bucket]:
    """(whether a message may go now, the bucket after it). No limit: always, unchanged."""
    if per_minute is None:
        return True, bucket
    elapsed = max(0.0, now - bucket.at)
    tokens = min(float(per_minute), bucket.tokens + elapsed * per_minute / 60.0)
    if tokens >= 1.0:
        return True, Bucket(tokens - 1.0, now)
    return False, Bucket(tokens, now)


Gate = Literal["relay", "muted", "rate_limited", "moderate"]


def gate(
    *,
    muted_until: float | None,
    bucket: Bucket,
    per_minute: int | None,
    moderated: bool,
    now: float,
) -> tuple[Gate, Bucket]:
    """What becomes of a member's message: muted first (a muted member spends no tokens), then
    the rate limit, then the moderation webhook, if any; else relayed at once."""
    if muted_until is not None and muted_until > now:
        return "muted", bucket
    allowed, after = take_token(bucket, per_minute, now)
    if not allowed:
        return "rate_limited", after
    return ("moderate" if moderated else "relay"), after


def should_tell(told_at: float | None, now: float) -> bool:
    """Whether to tell a refused member why: not if they were told within NOTICE_SECONDS."""
    return told_at is None or now - told_at >= NOTICE_SECONDS


def verdict_of(answer: Any) -> tuple[Verdict, str | None] | None:
    """The moderation webhook's answer `{"decision": "allow" | "hold" | "reject", "reason"}`
    as (verdict, reason); None when it is not one (the configured `on_timeout` is taken)."""
    if not isinstance(answer, dict):
        return None
    decision = answer.get("decision")
    if decision not in ("allow", "hold", "reject"):
        return None
    reason = answer.get("reason")
    return decision, reason[:500] if isinstance(reason, str) and reason else None


def in_language(texts: Mapping[str, str], language: str | None) -> str:
    """The text for `language`, else the first given ("" when none)."""
    if language is not None and language in texts:
        return texts[language]
    return next(iter(texts.values()), "")


def minutes_left(until: float, now: float) -> int:
    """Whole minutes until `until`, at least 1: what a muted member is told."""
    return max(1, int((until - now + 59) // 60))


# What members are told, in the community's voice. `{community}` is its name.
NOTICES = {
    "muted": "Your message was not passed on: you are muted in {community} for {minutes} more"
    " minute(s).{reason}",
    "rate_limited": "Your message was not passed on: in {community} you may send {limit}"
    " message(s) a minute. Please wait a moment.",
    "rejected": "Your message was not passed on in {community}.{reason}",
    "held": "Your message in {community} waits for a moderator.",
    "left": "You left {community}. Send {join} to join again.",
    "removed": "You were removed from {community}.{reason}",
    "banned": "You were removed from {community} and cannot join it again.{reason}",
    "refused": "You cannot join {community}.",
    "already": "You are in {community} already, as {name}.",
    "renamed": "In {community} you are now {name}.",
    "name_taken": "The name {name} is taken in {community}: choose another.",
    "joined": "Welcome to {community}! The others see you as {name}. To choose another name,"
    " send {rename} followed by the name. To leave, send {leave}.",
}


def notice(kind: str, **values: object) -> str:
    """The line telling a member `kind`, with `values` filled in; a `reason` reads as a
    sentence after the notice."""
    reason = values.get("reason")
    values["reason"] = f" Reason: {reason}" if reason else ""
    return NOTICES[kind].format(**values)
