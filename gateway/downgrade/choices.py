"""Numbered choices: how a choice rendered as text comes back as the postback it stands for.

Wherever the engine turns buttons, quick replies, list rows or carousel actions into numbered
text, it records a `Choice` per number. When the recipient answers — "2", "two", "#2", "2.",
"second" or the option's title, in any case and with stray spaces or punctuation —
`match_choice` finds the choice, and the gateway emits the same `postback` a native button
would have produced.
"""

from __future__ import annotations

import unicodedata
from typing import NamedTuple

import regex

# The body of choices offered with no text of their own (quick replies on an image, a
# carousel that must have a body).
CHOOSE = "Please choose:"


class Choice(NamedTuple):  # a tuple: built for every numbered option of every send
    number: int
    title: str
    payload: str


_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "first": 1, "second": 2, "third": 3, "fourth": 4, "fifth": 5, "sixth": 6, "seventh": 7,
    "eighth": 8, "ninth": 9, "tenth": 10,
}  # fmt: skip
# "2", "#2", "no. 2", "number 2", "option 2", "2nd", "(2)", "2." — the number and nothing else.
_NUMBER = regex.compile(
    r"^(?:#|no\.?|nr\.?|number|num|option|opt|choice)?\s*\(?\s*(\d{1,3})\s*(?:st|nd|rd|th)?\s*[).:]?$"
)
_NOT_WORD = regex.compile(r"[\p{P}\p{S}\s]+")


def normalise(text: str) -> str:
    """Case-folded, accents kept, punctuation and runs of space collapsed to one space."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return _NOT_WORD.sub(" ", folded).strip()


def match_choice(text: str, choices: list[Choice]) -> Choice | None:
    """The choice `text` picks, or None (then it is an ordinary message)."""
    if not choices or len(text) > 200:
        return None
    raw = unicodedata.normalize("NFKC", text).casefold().strip().strip("!?¡¿ ")
    number: int | None = None
    if found := _NUMBER.match(raw):
        number = int(found.group(1))
    else:
        words = normalise(raw)
        if words in _WORDS:
            number = _WORDS[words]
        elif words.startswith(("option ", "number ", "choice ")):
            number = _WORDS.get(words.split(" ", 1)[1])
    if number is not None:
        return next((c for c in choices if c.number == number), None)
    wanted = normalise(raw)
    if not wanted:
        return None
    titled = [c for c in choices if normalise(c.title) == wanted]
    return titled[0] if len(titled) == 1 else None


def numbered_line(choice: Choice, detail: str | None = None) -> str:
    return f"{choice.number}. {choice.title}" + (f" - {detail}" if detail else "")


def reply_hint(choices: list[Choice]) -> str:
    if len(choices) == 1:
        return "Reply 1 to choose it."
    return f"Reply with a number (1-{choices[-1].number})."
