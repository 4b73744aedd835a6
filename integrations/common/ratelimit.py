"""Per-tenant token buckets for Virtuous, shared by every worker process.

Virtuous allows a number of requests per hour per organisation (spec section 2). Each tenant
gets one bucket, keyed by its public id, that refills at ``per_hour / 3600`` tokens a second up
to ``burst_seconds`` worth of budget. The bucket lives where all workers see it: a database row
locked for each update, or a Redis hash updated by one Lua script. There is no global limiter:
one tenant's exhaustion never slows another.

Virtuous counts in fixed windows (X-RateLimit-Reset is the window's end), so beside the bucket
each key keeps what the last answer said remains in the current window, less what was taken
since: until the reset, no refill lets a call past that count. Without it the bucket's steady
refill, which Virtuous's window does not have, lets a tenant with several calls in flight send
one more than the window holds.

Within a known window the calls are also spread: while the window's remainder is no more than
the bucket would refill before the reset (the tenant's budget, not the window, is what binds),
the bucket holds at most ``spread`` seconds of budget. A budget-bound tenant then sends a call
about every 1/rate seconds, each carrying what came meanwhile, instead of spending the window in
its first seconds and holding every later donation until the reset; a tenant with window to
spare keeps its whole burst.

Call the limiter outside long transactions: on the database backend a call holds the tenant's
row lock until the surrounding transaction commits.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

RATE_LIMIT_BACKENDS = ("auto", "database", "redis")


@dataclass(frozen=True)
class BucketShape:
    capacity: float
    rate: float  # tokens per second
    spread: float = 0.0  # seconds of budget a window may run ahead of its even pace; 0: no spreading


@dataclass(frozen=True)
class BucketState:
    """A bucket as read, refilled to ``now``. ``window_left`` counts only while ``now < window_until``."""

    tokens: float
    paused_until: float
    window_left: float = 0.0
    window_until: float = 0.0


class Grant(NamedTuple):
    """What an acquire answers: the seconds to wait (0.0: taken), and the window's count after it."""

    wait: float
    window_left: float
    window_until: float


class BucketBackend(Protocol):
    """Atomic operations on one bucket. ``now`` is Unix time; every operation refills first."""

    def acquire(self, key: str, shape: BucketShape, *, now: float, cost: int, floor: float) -> Grant: ...

    def observe(
        self, key: str, shape: BucketShape, *, now: float, remaining: int, reset: float | None
    ) -> None: ...

    def pause(self, key: str, shape: BucketShape, *, now: float, until: float) -> None: ...

    def read(self, key: str, shape: BucketShape, *, now: float) -> BucketState: ...


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


def _window_wait(state: BucketState, *, now: float, cost: int) -> float:
    """Seconds until Virtuous's current window (as last announced) lets ``cost`` more calls in."""
    if now < state.window_until and state.window_left < cost:
        return state.window_until - now
    return 0.0


def _spread(
    tokens: float, shape: BucketShape, *, now: float, window_left: float, window_until: float
) -> float:
    """The tokens a bucket may hold now: at most ``spread`` seconds of budget while the window
    is tight (module docstring)."""
    if shape.spread <= 0 or now >= window_until or window_left > shape.rate * (window_until - now):
        return tokens
    return min(tokens, max(1.0, shape.spread * shape.rate))


def _window_observed(
    window_left: float, window_until: float, *, remaining: int, reset: float | None
) -> tuple[float, float]:
    """The window after an answer: a later reset starts a new count, the same reset keeps the
    lower count (answers cross on the way back), an earlier one is a stale answer and changes nothing."""
    if reset is None or reset < window_until:
        return window_left, window_until
    if reset == window_until:
        return min(window_left, float(remaining)), window_until
    return float(remaining), reset


class DatabaseBackend:
    """One ``integrations.RateBucket`` row per key, changed under ``select_for_update``."""

    def _locked(self, key: str, shape: BucketShape, now: float):
        from integrations.models import RateBucket

        bucket, _ = RateBucket.objects.select_for_update().get_or_create(
            key=key, defaults={"tokens": shape.capacity, "refilled_at": now}
        )
        bucket.tokens = _row_tokens(bucket, shape, now)
        bucket.refilled_at = max(bucket.refilled_at, now)
        return bucket

    def acquire(self, key: str, shape: BucketShape, *, now: float, cost: int, floor: float) -> Grant:
        with transaction.atomic():
            bucket = self._locked(key, shape, now)
            wait = bucket.paused_until - now
            if wait <= 0:
                wait = max(
                    _wait_for(bucket.tokens, shape, cost=cost, floor=floor),
                    _window_wait(_state(bucket), now=now, cost=cost),
                )
                if wait == 0.0:
                    bucket.tokens -= cost
                    bucket.window_left -= cost
            bucket.save(update_fields=["tokens", "refilled_at", "window_left"])
        return Grant(max(wait, 0.0), bucket.window_left, bucket.window_until)

    def observe(
        self, key: str, shape: BucketShape, *, now: float, remaining: int, reset: float | None
    ) -> None:
        with transaction.atomic():
            bucket = self._locked(key, shape, now)
            remaining = max(remaining, 0)
            if reset is None:
                bucket.tokens = min(bucket.tokens, float(remaining))
            bucket.window_left, bucket.window_until = _window_observed(
                bucket.window_left, bucket.window_until, remaining=remaining, reset=reset
            )
            if remaining <= 0 and reset is not None:
                bucket.paused_until = max(bucket.paused_until, reset)
            bucket.save(
                update_fields=["tokens", "refilled_at", "paused_until", "window_left", "window_until"]
            )

    def pause(self, key: str, shape: BucketShape, *, now: float, until: float) -> None:
        with transaction.atomic():
            bucket = self._locked(key, shape, now)
            bucket.paused_until = max(bucket.paused_until, until)
            bucket.save(update_fields=["tokens", "refilled_at", "paused_until"])

    def read(self, key: str, shape: BucketShape, *, now: float) -> BucketState:
        from integrations.models import RateBucket

        bucket = RateBucket.objects.filter(key=key).first()
        if bucket is None:
            return BucketState(tokens=shape.capacity, paused_until=0.0)
        bucket.tokens = _row_tokens(bucket, shape, now)
        return _state(bucket)


def _row_tokens(bucket: Any, shape: BucketShape, now: float) -> float:
    """A row's tokens at ``now``: refilled, then held to the spread while its window is tight."""
    tokens = _refill(bucket.tokens, bucket.refilled_at, shape, now)
    return _spread(tokens, shape, now=now, window_left=bucket.window_left, window_until=bucket.window_until)


def _state(bucket: Any) -> BucketState:
    return BucketState(bucket.tokens, bucket.paused_until, bucket.window_left, bucket.window_until)


# One script for every operation so each is a single atomic step on the server. Numbers go back
# as strings: Redis truncates Lua numbers to integers on the way out.
_LUA = """
local key = KEYS[1]
local op = ARGV[1]
local now = tonumber(ARGV[2])
local capacity = tonumber(ARGV[3])
local rate = tonumber(ARGV[4])
local spread = tonumber(ARGV[5])
local state = redis.call('HMGET', key, 'tokens', 'refilled_at', 'paused_until', 'window_left', 'window_until')
local tokens = tonumber(state[1])
local refilled_at = tonumber(state[2])
local paused_until = tonumber(state[3]) or 0
local window_left = tonumber(state[4]) or 0
local window_until = tonumber(state[5]) or 0
if tokens == nil then
  tokens = capacity
  refilled_at = now
end
if now > refilled_at then
  tokens = tokens + (now - refilled_at) * rate
  refilled_at = now
end
tokens = math.min(capacity, tokens)
if spread > 0 and now < window_until and window_left <= rate * (window_until - now) then
  tokens = math.min(tokens, math.max(1, spread * rate))
end
if op == 'read' then
  return {tostring(tokens), tostring(paused_until), tostring(window_left), tostring(window_until)}
end
local result = 0
if op == 'acquire' then
  local cost = tonumber(ARGV[6])
  local floor = tonumber(ARGV[7])
  if paused_until > now then
    result = paused_until - now
  else
    local missing = floor + cost - tokens
    if missing > 0 then
      if rate > 0 then
        result = missing / rate
      else
        result = 3600
      end
    end
    if now < window_until and window_left < cost then
      result = math.max(result, window_until - now)
    end
    if result == 0 then
      tokens = tokens - cost
      window_left = window_left - cost
    end
  end
elseif op == 'observe' then
  local remaining = math.max(tonumber(ARGV[6]), 0)
  if ARGV[7] == '' then
    tokens = math.min(tokens, remaining)
  else
    local reset = tonumber(ARGV[7])
    if reset > window_until then
      window_left = remaining
      window_until = reset
    elseif reset == window_until then
      window_left = math.min(window_left, remaining)
    end
    if remaining <= 0 then
      paused_until = math.max(paused_until, reset)
    end
  end
elseif op == 'pause' then
  paused_until = math.max(paused_until, tonumber(ARGV[6]))
end
redis.call('HSET', key, 'tokens', tostring(tokens), 'refilled_at', tostring(refilled_at),
           'paused_until', tostring(paused_until), 'window_left', tostring(window_left),
           'window_until', tostring(window_until))
redis.call('EXPIRE', key, math.ceil(math.max(7200, paused_until - now + 3600)))
return {tostring(result), tostring(window_left), tostring(window_until)}
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
        args = [op, repr(now), repr(shape.capacity), repr(shape.rate), repr(shape.spread), *extra]
        return [float(v) for v in self._script(keys=[self.prefix + key], args=args)]

    def acquire(self, key: str, shape: BucketShape, *, now: float, cost: int, floor: float) -> Grant:
        wait, window_left, window_until = self._run("acquire", key, shape, now, str(cost), repr(floor))
        return Grant(max(wait, 0.0), window_left, window_until)

    def observe(
        self, key: str, shape: BucketShape, *, now: float, remaining: int, reset: float | None
    ) -> None:
        self._run("observe", key, shape, now, str(remaining), "" if reset is None else repr(reset))

    def pause(self, key: str, shape: BucketShape, *, now: float, until: float) -> None:
        self._run("pause", key, shape, now, repr(until))

    def read(self, key: str, shape: BucketShape, *, now: float) -> BucketState:
        return BucketState(*self._run("read", key, shape, now))


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
        spread_seconds: float | None = None,
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
        spread = settings.VIRTUOUS_WINDOW_SPREAD_SECONDS if spread_seconds is None else spread_seconds
        self.shape = BucketShape(
            capacity=max(1.0, per_hour * burst / 3600), rate=per_hour / 3600, spread=max(float(spread), 0.0)
        )
        self.backend = backend if backend is not None else default_backend()
        self.clock = clock
        # The window's (count, reset) as this budget's last take left it; see ``observe``.
        self._window_seen: tuple[float, float] | None = None

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
        grant = self.backend.acquire(self.key, self.shape, now=self.clock(), cost=cost, floor=floor)
        if grant.wait == 0.0:
            self._window_seen = (grant.window_left, grant.window_until)
        return grant.wait

    def seconds_until(self, cost: int, *, keep_reserve: bool = False) -> float:
        """Seconds until ``cost`` tokens (at most the capacity) are there to take in a row; 0.0 when
        they are now. Takes nothing: for work that needs several calls before any of them counts."""
        now = self.clock()
        state = self.backend.read(self.key, self.shape, now=now)
        cost = max(1, min(cost, int(self.shape.capacity)))
        floor = 0.0
        if keep_reserve:
            floor = min(self.shape.capacity * self.reserve_fraction, max(self.shape.capacity - cost, 0.0))
        missing = floor + cost - state.tokens
        refill = missing / self.shape.rate if self.shape.rate > 0 else 3600.0
        return max(state.paused_until - now, refill, _window_wait(state, now=now, cost=cost), 0.0)

    def observe(self, remaining: int | None, reset_epoch: float | None) -> None:
        """Re-sync from X-RateLimit-Remaining/-Reset. With a reset, the answer sets the window's
        count (what may still go before the reset) and leaves the tokens alone: the tokens are
        the tenant's budget, which keeps refilling, and capping them at an answer's count threw
        away what had refilled while that call was in flight (about one call a window once the
        window runs low). Without a reset there is no window to hold, so the tokens are capped
        at the count. None remaining pauses the tenant until the reset time plus
        ``VIRTUOUS_RATE_RESET_MARGIN_SECONDS`` (the reset is in whole seconds, on another clock).

        An answer that can change nothing is not sent to the backend (a round trip a call saved):
        one for the window this budget last took from, counting no fewer than that take left.
        Within a window the count only falls (takes lower it, answers keep the lower count), so
        it is still at most what the take saw, and the answer's count would be kept out by it."""
        if remaining is None:
            return
        if reset_epoch is not None:
            reset_epoch += settings.VIRTUOUS_RATE_RESET_MARGIN_SECONDS
            seen = self._window_seen
            if (
                seen is not None
                and remaining > 0
                and abs(reset_epoch - seen[1]) < 1e-3
                and remaining >= seen[0]
            ):
                return
        self.backend.observe(self.key, self.shape, now=self.clock(), remaining=remaining, reset=reset_epoch)

    def pause_until(self, epoch: float) -> None:
        """No calls before ``epoch`` (a later pause already in place is kept)."""
        self.backend.pause(self.key, self.shape, now=self.clock(), until=epoch)

    def paused_for(self) -> float:
        """Seconds the tenant is still paused, 0.0 when it is not."""
        now = self.clock()
        return max(self.backend.read(self.key, self.shape, now=now).paused_until - now, 0.0)

    def snapshot(self) -> dict[str, Any]:
        """Current state for the admin: tokens, capacity, per_hour, paused_until (aware or None)."""
        now = self.clock()
        state = self.backend.read(self.key, self.shape, now=now)
        tokens, paused_until = state.tokens, state.paused_until
        if now < state.window_until:
            tokens = min(tokens, max(state.window_left, 0.0))
        return {
            "key": self.key,
            "tokens": round(tokens, 3),
            "capacity": self.shape.capacity,
            "per_hour": self.per_hour,
            "paused_until": datetime.fromtimestamp(paused_until, UTC) if paused_until > now else None,
        }


def tenant_budget(tenant: Any) -> TenantBudget:
    """A tenant's Virtuous budget, the one shape its client spends and its console shows: keyed by
    its public id, its usable hourly budget, its live reserve, and spread only for a tenant that
    batches (a paced call carries what came meanwhile; one item a call gains nothing by waiting,
    and each wait costs the drain a turn)."""
    return TenantBudget(
        str(tenant.public_id),
        tenant.usable_hourly_budget,
        reserve_fraction=min(tenant.bulk_reserve_percent, 99) / 100,
        spread_seconds=settings.VIRTUOUS_WINDOW_SPREAD_SECONDS if tenant.batching_enabled else 0.0,
    )
