"""Per-connection limits on what a client may send."""

import time


class TokenBucket:
    """
    ``rate`` frames a second on average, ``burst`` at once. ``take`` says
    whether one more frame may go through now; it never waits, so a flooding
    client is answered at once and costs the others nothing.
    """

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.updated = time.monotonic()

    def take(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False
