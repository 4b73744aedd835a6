"""Per-tenant token buckets for Virtuous, shared by every worker process.

Virtuous allows a number of requests per hour per organisation (spec section 2). Each tenant
gets one bucket, keyed by its public id, that refills at ``per_hour / 3600`` tokens a second up
to ``burst_seconds`` worth of budget. The bucket lives where all workers see it: a database row
locked for each update, or a Redis hash updated by one Lua script. There is no global limiter:
one tenant's exhaustion never slows another.

Call the limiter outside long transactions: on the database backend a call holds the tenant's
row lock until the surrounding transaction commits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

RATE_LIMIT_BACKENDS = ("auto", "database", "redis")


@dataclass(frozen=True)
class BucketShape:
    capacity: float
    rate: float  # tokens per second


class BucketBackend(Protocol):
    """Atomic operations on one bucket. ``now`` is Unix time; every operation refills first."""

    def acquire(self, key: str, shape: BucketShape, *, now: float, cost: int, floor: float) -> float: ...

    def observe(
        self, key: str, shape: BucketShape, *, now: float, remaining: int, reset: float | None
    ) -> None: ...

    def pause(self, key: str, shape: BucketShape, *, now: float, until: float) -> None: ...

    def read(self, key: str, shape: BucketShape, *, now: float) -> tuple[float, float]: ...


def _refill(tokens: float, refilled_at: float, shape: BucketShape, now: float) -> float:
    elapsed = max(0.0, now - refilled_at)
    return min(shape.capacity, tokens + elapsed * shape.rate)


def _wait_for(tokens: float, shape: BucketShape, *, cost: int, floor: float) -> float:
    """Seconds until ``tokens`` minus ``cost`` stays at or above ``floor``; 0.0 means now."""
    missing = floor + cost - tokens
    if missing <= 0:
        return 0.0
    if shape.rate <= 0:
        return 3600.0
    return missing / shape.rate


class DatabaseBackend:
    """One ``integrations.RateBucket`` row per key, changed under ``select_for_update``."""

    def _locked(self, key: str, shape: BucketShape, now: float):
        from integrations.models import RateBucket

        bucket, _ = RateBucket.objects.select_for_update().get_or_create(
            key=key, defaults={"tokens": shape.capacity, "refilled_at": now}
        )
        bucket.tokens = _refill(bucket.tokens, bucket.refilled_at, shape, now)
        bucket.refilled_at = max(bucket.refilled_at, now)
        return bucket

    def acquire(self, key: str, shape: BucketShape, *, now: float, cost: int, floor: float) -> float:
        with transaction.atomic():
            bucket = self._locked(key, shape, now)
            wait = bucket.paused_until - now
            if wait <= 0:
                wait = _wait_for(bucket.tokens, shape, cost=cost, floor=floor)
                if wait == 0.0:
                    bucket.tokens -= cost
            bucket.save(update_fields=["tokens", "refilled_at"])
        return max(wait, 0.0)

    def observe(
        self, key: str, shape: BucketShape, *, now: float, remaining: int, reset: float | None
    ) -> None:
        with transaction.atomic():
            bucket = self._locked(key, shape, now)
            bucket.tokens = min(bucket.tokens, float(max(remaining, 0)))
            if remaining <= 0 and reset is not None:
                bucket.paused_until = max(bucket.paused_until, reset)
            bucket.save(update_fields=["tokens", "refilled_at", "paused_until"])

    def pause(self, key: str, shape: BucketShape, *, now: float, until: float) -> None:
        with transaction.atomic():
            bucket = self._locked(key, shape, now)
            bucket.paused_until = max(bucket.paused_until, until)
            bucket.save(update_fields=["tokens", "refilled_at", "paused_until"])

    def read(self, key: str, shape: BucketShape, *, now: float) -> tuple[float, float]:
        from integrations.models import RateBucket

        bucket = RateBucket.objects.filter(key=key).first()
        if bucket is None:
            return shape.capacity, 0.0
        return _refill(bucket.tokens, bucket.refilled_at, shape, now), bucket.paused_until


# One script for every operation so each is a single atomic step on the server. Numbers go back
# as strings: Redis truncates Lua numbers to integers on the way out.
_LUA = """
local key = KEYS[1]
local op = ARGV[1]
local now = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local rate = tonumber(ARGV[4])
local state = redis.call('HMGET', key, 'tokens', 'refilled_at', 'paused_until')
local tokens = tonumber(state[1])
local refilled_at = tonumber(state[2])
local paused_until = tonumber(state[3]) or 0
if tokens == nil then
  tokens = capacity
  refilled_at = now
end
if now > refilled_at then
  tokens = tokens + (now - refilled_at) * rate
  refilled_at = now
end
tokens = math.min(capacity, tokens)
if op == 'read' then
  return {tostring(tokens), tostring(paused_until)}
end
local result = 0
if op == 'acquire' then
  local cost = tonumber(ARGV[5])
  local floor = tonumber(ARGV[6])
  if paused_until > now then
    result = paused_until - now
  else
    local missing = floor + cost - tokens
    if missing <= 0 then
      tokens = tokens - cost
    elseif rate > 0 then
      result = missing / rate
    else
      result = 3600
    end
  end
elseif op == 'observe' then
  local remaining = math.max(tonumber(ARGV[5]), 0)
  tokens = math.min(tokens, remaining)
  if remaining <= 0 and ARGV[6] ~= '' then
    paused_until = math.max(paused_until, tonumber(ARGV[6]))
  end
elseif op == 'pause' then
  paused_until = math.max(paused_until, tonumber(ARGV[5]))
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'refilled_at', tostring(refilled_at),
           'paused_until', tostring(paused_until))
redis.call('EXPIRE', key, math.ceil(math.max(7200, paused_until - now + 3600)))
return {tostring(result)}
"""

_redis_clients: dict[str, Any] = {}
_redis_lock = threading.Lock()


class RedisBackend:
    """One Redis hash per key, changed only by the Lua script above."""

    def __init__(self, *, url: str | None = None, prefix: str | None = None) -> None:
        import redis

        self.url = url or settings.REDIS_URL
        if not self.url:
            raise ImproperlyConfigured("RATE_LIMIT_BACKEND=redis needs REDIS_URL.")
        self.prefix = settings.RATE_LIMIT_REDIS_PREFIX if prefix is None else prefix
        with _redis_lock:
            if self.url not in _redis_clients:
                _redis_clients[self.url] = redis.Redis.from_url(
                    self.url, socket_timeout=5, socket_connect_timeout=5
                )
            self.client = _redis_clients[self.url]
        self._script = self.client.register_script(_LUA)

    def _run(self, op: str, key: str, shape: BucketShape, now: float, *extra: str) -> list[float]:
        args = [op, repr(now), repr(shape.capacity), repr(shape.rate), *extra]
        return [float(v) for v in self._script(keys=[self.prefix + key], args=args)]

    def acquire(self, key: str, shape: BucketShape, *, now: float, cost: int, floor: float) -> float:
        return max(self._run("acquire", key, shape, now, str(cost), repr(floor))[0], 0.0)

    def observe(
        self, key: str, shape: BucketShape, *, now: float, remaining: int, reset: float | None
    ) -> None:
        self._run("observe", key, shape, now, str(remaining), "" if reset is None else repr(reset))

    def pause(self, key: str, shape: BucketShape, *, now: float, until: float) -> None:
        self._run("pause", key, shape, now, repr(until))

    def read(self, key: str, shape: BucketShape, *, now: float) -> tuple[float, float]:
        tokens, paused_until = self._run("read", key, shape, now)
        return tokens, paused_until


def default_backend() -> BucketBackend:
    """The backend chosen by ``RATE_LIMIT_BACKEND`` (auto: Redis when REDIS_URL is set)."""
    choice = settings.RATE_LIMIT_BACKEND
    if choice not in RATE_LIMIT_BACKENDS:
        raise ImproperlyConfigured(
            f"RATE_LIMIT_BACKEND={choice!r}; use one of {', '.join(RATE_LIMIT_BACKENDS)}."
        )
    if choice == "redis" or (choice == "auto" and settings.REDIS_URL):
        return RedisBackend()
    return DatabaseBackend()


class TenantBudget:
    """One tenant's share of its Virtuous organisation's hourly request budget."""

    def __init__(
        self,
        key: str,
        per_hour: int,
        *,
        reserve_fraction: float = 0.0,
        burst_seconds: int | None = None,
        backend: BucketBackend | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if per_hour < 0:
            raise ValueError("per_hour cannot be negative.")
        if not 0.0 <= reserve_fraction < 1.0:
            raise ValueError("reserve_fraction must be in [0, 1).")
        burst = settings.VIRTUOUS_BUCKET_BURST_SECONDS if burst_seconds is None else burst_seconds
        self.key = key
        self.per_hour = per_hour
        self.reserve_fraction = reserve_fraction
        self.shape = BucketShape(capacity=max(1.0, per_hour * burst / 3600), rate=per_hour / 3600)
        self.backend = backend if backend is not None else default_backend()
        self.clock = clock

    @property
    def capacity(self) -> float:
        return self.shape.capacity

    def try_acquire(self, cost: int = 1, *, keep_reserve: bool = False) -> float:
        """Take ``cost`` tokens: 0.0 when granted, else the seconds to wait (nothing taken).

        With ``keep_reserve`` the last ``reserve_fraction`` of the capacity is never taken, so
        bulk work always leaves budget for live donations. The reserve shrinks so that one
        request always fits, otherwise a tiny budget would starve bulk work forever.
        """
        if cost < 1:
            raise ValueError("cost must be at least 1.")
        floor = 0.0
        if keep_reserve:
            floor = min(self.shape.capacity * self.reserve_fraction, max(self.shape.capacity - cost, 0.0))
        return self.backend.acquire(self.key, self.shape, now=self.clock(), cost=cost, floor=floor)

    def seconds_until(self, cost: int, *, keep_reserve: bool = False) -> float:
        """Seconds until ``cost`` tokens (at most the capacity) are there to take in a row; 0.0 when
        they are now. Takes nothing: for work that needs several calls before any of them counts."""
        now = self.clock()
        tokens, paused_until = self.backend.read(self.key, self.shape, now=now)
        cost = max(1, min(cost, int(self.shape.capacity)))
        floor = 0.0
        if keep_reserve:
            floor = min(self.shape.capacity * self.reserve_fraction, max(self.shape.capacity - cost, 0.0))
        missing = floor + cost - tokens
        refill = missing / self.shape.rate if self.shape.rate > 0 else 3600.0
        return max(paused_until - now, refill, 0.0)

    def observe(self, remaining: int | None, reset_epoch: float | None) -> None:
        """Re-sync from X-RateLimit-Remaining/-Reset: never hold more tokens than Virtuous says
        remain, and none remaining pauses the tenant until the reset time plus
        ``VIRTUOUS_RATE_RESET_MARGIN_SECONDS`` (the reset is in whole seconds, on another clock)."""
        if remaining is None:
            return
        if reset_epoch is not None:
            reset_epoch += settings.VIRTUOUS_RATE_RESET_MARGIN_SECONDS
        self.backend.observe(self.key, self.shape, now=self.clock(), remaining=remaining, reset=reset_epoch)

    def pause_until(self, epoch: float) -> None:
        """No calls before ``epoch`` (a later pause already in place is kept)."""
        self.backend.pause(self.key, self.shape, now=self.clock(), until=epoch)

    def paused_for(self) -> float:
        """Seconds the tenant is still paused, 0.0 when it is not."""
        now = self.clock()
        _, paused_until = self.backend.read(self.key, self.shape, now=now)
        return max(paused_until - now, 0.0)

    def snapshot(self) -> dict[str, Any]:
        """Current state for the admin: tokens, capacity, per_hour, paused_until (aware or None)."""
        now = self.clock()
        tokens, paused_until = self.backend.read(self.key, self.shape, now=now)
        return {
            "key": self.key,
            "tokens": round(tokens, 3),
            "capacity": self.shape.capacity,
            "per_hour": self.per_hour,
            "paused_until": datetime.fromtimestamp(paused_until, UTC) if paused_until > now else None,
        }
