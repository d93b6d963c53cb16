"""
What one client may cost the server: frames per socket (``TokenBucket``),
refusals before a flooding socket is closed (``RefusalWindow``), and sockets
per client address (``AddressLimits``), keyed on the address a trusted proxy
saw (``client_address``).
"""

import ipaddress
import time
from collections import deque
from dataclasses import dataclass


class TokenBucket:
    """
    ``rate`` frames a second on average, ``burst`` at once. ``take`` says
    whether one more frame may go through now; it never waits, so a flooding
    client is answered at once and costs the others nothing.
    """

    __slots__ = ("burst", "rate", "tokens", "updated")

    def __init__(self, rate: float, burst: float) -> None:
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


@dataclass(frozen=True, slots=True)
class Refusal:
    flooding: bool  # past the limit: close the socket
    tell: bool  # send a rate_limited frame for this one (at most one a second)


class RefusalWindow:
    """
    Refused frames of one socket over the last ``window`` seconds. More than
    ``limit`` of them is flooding, however the client paces itself (a client
    sending at twice the rate is refused half the time, for ever, and never
    refused many times in a row). The client is told of refusals at most once
    every ``notice_every`` seconds, so refusing costs the server no frame per
    refused frame.
    """

    __slots__ = ("limit", "notice_every", "refused", "told_at", "window")

    def __init__(self, limit: int, window: float, notice_every: float = 1.0) -> None:
        self.limit = limit
        self.window = window
        self.notice_every = notice_every
        self.refused: deque[float] = deque()
        self.told_at = float("-inf")

    def refuse(self) -> Refusal:
        now = time.monotonic()
        self.refused.append(now)
        while self.refused[0] < now - self.window:
            self.refused.popleft()
        tell = now - self.told_at >= self.notice_every
        if tell:
            self.told_at = now
        return Refusal(flooding=len(self.refused) > self.limit, tell=tell)


def client_address(scope: dict, trusted_proxy_hops: int) -> str:
    """
    The client's address: with ``trusted_proxy_hops`` of 0, the socket's
    peer; with N, the N-th entry of ``X-Forwarded-For`` counted from the
    right (the address the outermost trusted proxy saw). Never the left-most
    entry a client can write itself, unless the proxies recorded fewer hops.
    """
    peer = (scope.get("client") or ("", 0))[0] or ""
    if trusted_proxy_hops <= 0:
        return peer
    values = [value.decode("latin-1") for name, value in scope.get("headers", []) if name == b"x-forwarded-for"]
    entries = [entry.strip() for entry in ",".join(values).split(",") if entry.strip()]
    if not entries:
        return peer
    return entries[-min(trusted_proxy_hops, len(entries))]


def parse_networks(spec: list[str], setting: str) -> tuple[ipaddress._BaseNetwork, ...]:
    """``["127.0.0.0/8", "::1"]`` as networks; ``ImproperlyConfigured`` naming ``setting`` for a bad entry."""
    networks = []
    for entry in spec:
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            from django.core.exceptions import ImproperlyConfigured

            raise ImproperlyConfigured(
                f"{setting}: {entry!r} is not an address or network; use e.g. 127.0.0.0/8,::1,10.0.0.0/16."
            ) from None
    return tuple(networks)


TOO_MANY_OPEN = "open"
TOO_MANY_NEW = "new"


class AddressLimits:
    """
    Sockets per client address, in this process: at most ``max_open`` at
    once (0: no limit) and ``max_new_per_second`` new ones a second (bursts
    of as many). Addresses in ``exempt`` are not counted.
    """

    def __init__(self, *, max_open: int, max_new_per_second: float, exempt: tuple) -> None:
        self.max_open = max_open
        self.max_new_per_second = max_new_per_second
        self.exempt = exempt
        self.open: dict[str, int] = {}
        self._new: dict[str, TokenBucket] = {}

    def _exempt(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False  # not an address at all (a unix socket, a broken header): counted by what it says
        return any(ip in network for network in self.exempt)

    def admit(self, address: str) -> str | None:
        """Count one more socket for ``address``; or say why not (``TOO_MANY_OPEN``, ``TOO_MANY_NEW``)."""
        if self._exempt(address):
            return None
        if self.max_open and self.open.get(address, 0) >= self.max_open:
            return TOO_MANY_OPEN
        if self.max_new_per_second:
            bucket = self._new.get(address)
            if bucket is None:
                if len(self._new) > 10_000:  # many addresses: keep only the ones still refilling
                    self._forget_full_buckets()
                bucket = self._new[address] = TokenBucket(self.max_new_per_second, self.max_new_per_second)
            if not bucket.take():
                return TOO_MANY_NEW
        self.open[address] = self.open.get(address, 0) + 1
        return None

    def release(self, address: str) -> None:
        """One socket admitted for ``address`` has closed."""
        count = self.open.get(address, 0) - 1
        if count > 0:
            self.open[address] = count
        else:
            self.open.pop(address, None)

    def _forget_full_buckets(self) -> None:
        now = time.monotonic()
        for address, bucket in list(self._new.items()):
            if bucket.tokens + (now - bucket.updated) * bucket.rate >= bucket.burst:
                del self._new[address]
