"""Console accounts, sessions and CSRF tokens (docs/console.md, "Security").

Sessions live in this process's memory: a restart logs everyone out, and two gateway
processes behind one load balancer need sticky sessions. Each session has its own CSRF token,
sent back with every change (a form field or the X-CSRF-Token header) and compared in
constant time.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from gateway.config import ConsoleAccount

_HASHER = PasswordHasher()
# Checked against when the account is unknown, so an unknown name costs what a known one does.
_DUMMY_HASH = _HASHER.hash(secrets.token_urlsafe(16))

# Failed logins slow the next try of the same account or address: 0.5 s after the first,
# doubling, at most 8 s. A correct password after failures still waits its turn.
FIRST_DELAY_SECONDS = 0.5
MAX_DELAY_SECONDS = 8.0
FORGET_FAILURES_SECONDS = 900.0


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def password_matches(account: ConsoleAccount | None, password: str) -> bool:
    stored = account.password_hash.get_secret_value() if account else _DUMMY_HASH
    try:
        return _HASHER.verify(stored, password) and account is not None
    except (VerificationError, InvalidHashError):
        return False


@dataclass
class _Failures:
    count: int = 0
    last_at: float = 0.0


class LoginThrottle:
    """How long a login attempt waits, from the failures of its account name and its address."""

    def __init__(self) -> None:
        self._failures: dict[str, _Failures] = {}

    def delay(self, *keys: str, now: float | None = None) -> float:
        now = time.monotonic() if now is None else now
        worst = 0
        for key in keys:
            found = self._failures.get(key)
            if found is not None and now - found.last_at < FORGET_FAILURES_SECONDS:
                worst = max(worst, found.count)
        if worst == 0:
            return 0.0
        return min(MAX_DELAY_SECONDS, FIRST_DELAY_SECONDS * 2.0 ** (worst - 1))

    def failed(self, *keys: str, now: float | None = None) -> int:
        now = time.monotonic() if now is None else now
        counts = []
        for key in keys:
            found = self._failures.setdefault(key, _Failures())
            if now - found.last_at >= FORGET_FAILURES_SECONDS:
                found.count = 0
            found.count += 1
            found.last_at = now
            counts.append(found.count)
        if len(self._failures) > 10_000:  # a spray of names must not grow memory for ever
            oldest = sorted(self._failures, key=lambda k: self._failures[k].last_at)
            for key in oldest[:5_000]:
                del self._failures[key]
        return max(counts)

    def succeeded(self, *keys: str) -> None:
        for key in keys:
            self._failures.pop(key, None)


@dataclass
class Session:
    id: str
    account: str
    role: str
    csrf: str
    expires_at: float
    flashes: list[str] = field(default_factory=list)

    def csrf_matches(self, sent: str | None) -> bool:
        return sent is not None and hmac.compare_digest(sent.encode(), self.csrf.encode())


class Sessions:
    """Server-side sessions by their random id, each ending `lifetime` seconds after login."""

    def __init__(self, lifetime_seconds: float) -> None:
        self.lifetime = lifetime_seconds
        self._sessions: dict[str, Session] = {}

    def open(self, account: ConsoleAccount) -> Session:
        self._expire()
        session = Session(
            id=secrets.token_urlsafe(32),
            account=account.name,
            role=account.role,
            csrf=secrets.token_urlsafe(32),
            expires_at=time.time() + self.lifetime,
        )
        self._sessions[session.id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        found = self._sessions.get(session_id)
        if found is None or found.expires_at <= time.time():
            self._sessions.pop(session_id, None)
            return None
        return found

    def close(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def end_for(self, names: set[str]) -> None:
        """End the sessions of accounts no longer configured as they were."""
        for key in [k for k, s in self._sessions.items() if s.account in names]:
            del self._sessions[key]

    def _expire(self) -> None:
        now = time.time()
        for key in [k for k, s in self._sessions.items() if s.expires_at <= now]:
            del self._sessions[key]
