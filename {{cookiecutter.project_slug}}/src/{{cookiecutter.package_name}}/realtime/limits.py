"""Rate limits: a token bucket per connection."""

from __future__ import annotations

import time


class TokenBucket:
    """Allows `rate` actions per second on average, in bursts of up to `burst`.

    Starts full. `take` never blocks: it says whether one more action fits now.
    """

    __slots__ = ("_burst", "_last", "_rate", "_tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self._rate = rate
        self._burst = float(burst)
        self._tokens = float(burst)
        self._last = time.monotonic()

    def take(self) -> bool:
        """Spend one token if there is one; False (nothing spent) when the bucket is empty."""
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._last) * self._rate)
        self._last = now
        if self._tokens >= 1.0:
            self._tokens -= 1.0
            return True
        return False
