"""Client-side request and token rate limits, with an injectable clock.

API providers enforce requests-per-minute and tokens-per-minute limits; staying under them
locally avoids burning retries on 429s. Each limit is a token bucket that holds at most one
minute's allowance and refills continuously. A caller *reserves* its amount at once (the
level may go negative) and then sleeps until the debt is repaid, so waiters are served in
arrival order without a lock -- and the buckets hold only numbers, so they outlive the event
loop of one ``recommend`` call. All waiting goes through a ``Clock`` so that tests can run
minutes of limits in milliseconds.
"""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """Monotonic wall time and real ``asyncio.sleep``."""

    def now(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class TokenBucket:
    """``per_minute`` units per minute, bursting to at most one minute's worth."""

    def __init__(self, per_minute: float, clock: Clock) -> None:
        if per_minute <= 0:
            raise ValueError("a rate limit must be positive")
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self.clock = clock
        self.level = self.capacity
        self._last = clock.now()

    def _refill(self) -> None:
        now = self.clock.now()
        self.level = min(self.capacity, self.level + (now - self._last) * self.rate)
        self._last = now

    def reserve(self, amount: float) -> float:
        """Take ``amount`` now; return the seconds to wait before using it (0 if none).

        An amount above the capacity is allowed (it waits for a full bucket and more), so a
        single oversized request can never block forever."""
        self._refill()
        self.level -= amount
        return 0.0 if self.level >= 0 else -self.level / self.rate

    def adjust(self, amount: float) -> None:
        """Credit (or, negative, debit) a reservation that differed from the real use."""
        self._refill()
        self.level = min(self.capacity, self.level + amount)


class RateLimiter:
    """Optional rpm and tpm buckets; ``None`` disables a limit."""

    def __init__(self, rpm: float | None, tpm: float | None, clock: Clock) -> None:
        self.clock = clock
        self.requests = TokenBucket(rpm, clock) if rpm else None
        self.tokens = TokenBucket(tpm, clock) if tpm else None

    async def acquire(self, tokens: int) -> None:
        """Wait until one request of about ``tokens`` tokens may be sent."""
        waits = [0.0]
        if self.requests is not None:
            waits.append(self.requests.reserve(1))
        if self.tokens is not None:
            waits.append(self.tokens.reserve(tokens))
        if max(waits) > 0:
            await self.clock.sleep(max(waits))

    def settle(self, reserved: int, used: int) -> None:
        """Correct the token bucket once the server has reported the tokens actually used."""
        if self.tokens is not None:
            self.tokens.adjust(reserved - used)
