"""Prometheus metrics: every definition, every recording function and the scrape itself.

Two kinds of figures, so that call sites stay one line and nothing has to be kept in step by hand:

* **Events counted where they happen** (Virtuous calls by status class, 429s, inbound events by
  outcome, poll failures, confirmation latency, webhook receive latency, calls in flight). They
  live in the process that saw them. With ``PROMETHEUS_MULTIPROC_DIR`` set (the production
  profile) prometheus-client writes them to per-process files there, so gunicorn's workers and
  every qcluster process on a machine add up in one scrape.
* **State read from the database at scrape time** (:class:`DatabaseCollector`: queue depth by state,
  oldest due item, open dead letters, dead letters opened and resolved, budget used and left this
  hour, paused tenants, the scheduler's and the clusters' heartbeats). The tables are the truth, so
  these are right whichever process did the work and survive restarts.

Cardinality is bounded on purpose: tenants appear by slug, providers by key, outcomes and status
classes from fixed lists; never a donor, an item or an event id.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

F = TypeVar("F", bound=Callable[..., Any])
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Every process writes its own files here; the first one on the machine creates the directory.
    os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
capture_logger = logging.getLogger("giftline.capture")

VIRTUOUS_CALLS = Counter(
    "giftline_virtuous_calls",
    "Calls to Virtuous by tenant and outcome (status class 2xx/4xx/5xx, or network for no answer).",
    ["tenant", "status_class"],
)
VIRTUOUS_RATE_LIMITED = Counter(
    "giftline_virtuous_rate_limited", "429 answers from Virtuous, by tenant.", ["tenant"]
)
VIRTUOUS_CALL_SECONDS = Histogram(
    "giftline_virtuous_call_seconds",
    "Duration of one call to Virtuous (all tenants).",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
DRAIN_CALLS_IN_FLIGHT = Gauge(
    "giftline_drain_calls_in_flight",
    "Submitter calls to Virtuous under way, summed over this machine's live processes.",
    multiprocess_mode="livesum",
)
CONFIRMATION_SECONDS = Histogram(
    "giftline_confirmation_latency_seconds",
    "From submission to Virtuous's confirmation of one of our writes, by tenant.",
    ["tenant"],
    buckets=(60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 48 * 3600, 72 * 3600),
)
INBOUND_EVENTS = Counter(
    "giftline_inbound_events",
    "Inbound events processed by the inbound drain, by tenant and outcome.",
    ["tenant", "outcome"],
)
POLL_FAILURES = Counter(
    "giftline_poll_failures", "Failed polls of a source platform or Virtuous.", ["tenant", "provider"]
)
WEBHOOKS_RECEIVED = Counter(
    "giftline_webhooks_received",
    "Webhook requests answered by the receive view, by provider and HTTP status class.",
    ["provider", "status_class"],
)
WEBHOOK_RECEIVE_SECONDS = Histogram(
    "giftline_webhook_receive_seconds",
    "Time to verify, store and answer one webhook request.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

INBOUND_OUTCOMES = frozenset(
    {"processed", "ignored", "malformed", "needs_review", "failed", "duplicate", "retry"}
)


def status_class(status_code: int | None) -> str:
    if not status_code:
        return "network"
    return f"{status_code // 100}xx" if 100 <= status_code < 600 else "other"


# --- Tenant labels ------------------------------------------------------------------------------
# Code that holds only a tenant id (an inbound event, a queue row) asks here for the slug. Slugs
# are stable in practice; a renamed tenant shows its new slug after the process restarts.
_slugs: dict[int, str] = {}
_slugs_lock = threading.Lock()


def tenant_label(tenant: Any) -> str:
    """A Tenant, or a tenant's primary key → its slug."""
    slug = getattr(tenant, "slug", None)
    if slug:
        return slug
    with _slugs_lock:
        if tenant in _slugs:
            return _slugs[tenant]
    from tenants.models import Tenant

    slug = Tenant.objects.filter(pk=tenant).values_list("slug", flat=True).first() or "unknown"
    with _slugs_lock:
        _slugs[tenant] = slug
    return slug


# --- Recording functions (the one-line call sites) --------------------------------------------


def observed_calls(tenant: Any, on_call: Callable[[Any], None] | None) -> Callable[[Any], None]:
    """Wrap a Virtuous client's ``on_call`` so every call is counted for the tenant."""
    label = tenant_label(tenant)

    def record(call: Any) -> None:
        VIRTUOUS_CALLS.labels(label, status_class(call.status_code)).inc()
        if call.status_code == 429:
            VIRTUOUS_RATE_LIMITED.labels(label).inc()
        if call.duration_ms is not None:
            VIRTUOUS_CALL_SECONDS.observe(call.duration_ms / 1000)
        if on_call is not None:
            on_call(call)

    return record


def calls_in_flight(func: F) -> F:
    """Decorator for the submitter's call: counts it as in flight while it runs."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with DRAIN_CALLS_IN_FLIGHT.track_inprogress():
            return func(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def confirmation_observe(tenant: Any, submitted_at: Any, confirmed_at: Any) -> None:
    if submitted_at and confirmed_at:
        seconds = (confirmed_at - submitted_at).total_seconds()
        CONFIRMATION_SECONDS.labels(tenant_label(tenant)).observe(max(seconds, 0.0))


def confirmations_observe(tenant: Any, items: Any, confirmed_at: Any) -> None:
    """Before a confirming update: observe each item's submission-to-confirmation time."""
    for submitted_at in items.exclude(submitted_at=None).values_list("submitted_at", flat=True):
        confirmation_observe(tenant, submitted_at, confirmed_at)


def inbound_outcome(tenant: Any, outcome: str) -> None:
    INBOUND_EVENTS.labels(tenant_label(tenant), outcome if outcome in INBOUND_OUTCOMES else "other").inc()


def poll_failed(tenant: Any, provider: str) -> None:
    POLL_FAILURES.labels(tenant_label(tenant), provider).inc()


def webhook_observed(view: F) -> F:
    """Decorator for the receive view: latency histogram, answers by provider and status class,
    and one log line per request (with the tenant and connection the view put in the context)."""

    @functools.wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        started = time.perf_counter()
        response = view(request, *args, **kwargs)
        elapsed = time.perf_counter() - started
        WEBHOOK_RECEIVE_SECONDS.observe(elapsed)
        provider = getattr(request, "giftline_provider", "") or "unknown"
        WEBHOOKS_RECEIVED.labels(provider, status_class(response.status_code)).inc()
        capture_logger.info(
            "webhook.received provider=%s status=%s",
            provider,
            response.status_code,
            extra={
                "provider": provider,
                "http_status": response.status_code,
                "duration_ms": round(elapsed * 1000, 1),
            },
        )
        return response

    return wrapper  # type: ignore[return-value]


# --- Scrape-time figures from the database ----------------------------------------------------


class DatabaseCollector(Collector):
    """Reads the queue, dead letters, budgets and heartbeats at scrape time, in a few grouped
    queries. Results are kept for ``METRICS_DATABASE_CACHE_SECONDS`` so that several scrapers (or
    a scraper behind several web workers) cost the database one round of queries."""

    _lock = threading.Lock()
    _cached: tuple[float, list[Metric]] | None = None

    def collect(self) -> Iterator[Metric]:
        ttl = settings.METRICS_DATABASE_CACHE_SECONDS
        with self._lock:
            now = time.monotonic()
            if DatabaseCollector._cached is None or now - DatabaseCollector._cached[0] >= ttl:
                DatabaseCollector._cached = (now, list(self._read()))
            yield from DatabaseCollector._cached[1]

    def _read(self) -> Iterable[Metric]:
        from django.db.models import Count, Min, Q
        from django.utils import timezone

        from config import health
        from sync.models import Attempt, DeadLetter, OutboundItem
        from sync.selectors import QUEUE_STATES
        from tenants.models import Tenant

        now = timezone.now()
        tenants = {
            t.pk: t
            for t in Tenant.objects.only(
                "pk", "slug", "status", "hourly_request_budget", "budget_headroom_percent"
            )
        }
        slug = {pk: t.slug for pk, t in tenants.items()}

        paused = GaugeMetricFamily(
            "giftline_tenant_paused", "1 when the tenant's syncing is paused.", labels=["tenant"]
        )
        for t in tenants.values():
            paused.add_metric([t.slug], 0 if t.status == Tenant.Status.ACTIVE else 1)
        yield paused

        open_states = list(QUEUE_STATES)
        depth = GaugeMetricFamily(
            "giftline_queue_depth",
            "Outbound queue items by tenant, direction and state (confirmed and discarded are history, not counted).",
            labels=["tenant", "direction", "state"],
        )
        rows = (
            OutboundItem.objects.filter(state__in=open_states)
            .values_list("tenant_id", "direction", "state")
            .annotate(n=Count("id"))
            .order_by()
        )
        for tenant_id, direction, state, n in rows:
            depth.add_metric([slug.get(tenant_id, "unknown"), direction, state], n)
        yield depth

        oldest = GaugeMetricFamily(
            "giftline_queue_oldest_due_seconds",
            "Age of the oldest pending item that is due (0 when none is due), by tenant.",
            labels=["tenant"],
        )
        due = dict(
            OutboundItem.objects.filter(state=OutboundItem.State.PENDING, next_attempt_at__lte=now)
            .values_list("tenant_id")
            .annotate(oldest=Min("next_attempt_at"))
            .order_by()
            .values_list("tenant_id", "oldest")
        )
        for pk, t in tenants.items():
            when = due.get(pk)
            oldest.add_metric([t.slug], (now - when).total_seconds() if when else 0.0)
        yield oldest

        letters = {
            row["tenant_id"]: row
            for row in DeadLetter.objects.values("tenant_id")
            .annotate(
                total=Count("id"),
                open=Count("id", filter=Q(resolution=DeadLetter.Resolution.OPEN)),
            )
            .order_by()
        }
        open_letters = GaugeMetricFamily(
            "giftline_dead_letters_open", "Unresolved dead letters.", labels=["tenant"]
        )
        opened = CounterMetricFamily(
            "giftline_dead_letters_opened", "Dead letters ever opened (kept rows).", labels=["tenant"]
        )
        resolved = CounterMetricFamily(
            "giftline_dead_letters_resolved", "Dead letters replayed or discarded.", labels=["tenant"]
        )
        for pk, t in tenants.items():
            row = letters.get(pk, {"total": 0, "open": 0})
            open_letters.add_metric([t.slug], row["open"])
            opened.add_metric([t.slug], row["total"])
            resolved.add_metric([t.slug], row["total"] - row["open"])
        yield from (open_letters, opened, resolved)

        hour_start = now.replace(minute=0, second=0, microsecond=0)
        used = dict(
            Attempt.objects.filter(created_at__gte=hour_start)
            .values_list("tenant_id")
            .annotate(n=Count("id"))
            .order_by()
            .values_list("tenant_id", "n")
        )
        budget_used = GaugeMetricFamily(
            "giftline_budget_used", "Virtuous calls made this clock hour, by tenant.", labels=["tenant"]
        )
        budget_left = GaugeMetricFamily(
            "giftline_budget_left",
            "Usable Virtuous budget left this clock hour (hourly budget less headroom, less calls made).",
            labels=["tenant"],
        )
        for pk, t in tenants.items():
            budget_used.add_metric([t.slug], used.get(pk, 0))
            budget_left.add_metric([t.slug], max(t.usable_hourly_budget - used.get(pk, 0), 0))
        yield from (budget_used, budget_left)

        scheduler = health.scheduler_state(now=now)
        yield GaugeMetricFamily(
            "giftline_schedules_missing",
            "Declared schedules not installed (sync_schedules_apply not run since they were declared).",
            value=len(scheduler["missing"]),
        )
        yield GaugeMetricFamily(
            "giftline_scheduler_overdue_seconds",
            "How far behind the most overdue every-minute schedule is; grows when no scheduler runs.",
            value=scheduler["overdue_seconds"],
        )
        clusters = health.cluster_state()
        yield GaugeMetricFamily(
            "giftline_qcluster_clusters",
            "django-q2 clusters with a fresh heartbeat in the broker.",
            value=clusters["alive"],
        )
        yield GaugeMetricFamily(
            "giftline_scrape_timestamp_seconds",
            "When these database figures were read.",
            value=now.timestamp(),
        )


class _DefaultRegistry(Collector):
    """The single-process registry (no PROMETHEUS_MULTIPROC_DIR): the demo and the tests."""

    def collect(self) -> Iterator[Metric]:
        return REGISTRY.collect()


def metrics_registry(*, database: bool = True) -> CollectorRegistry:
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(_DefaultRegistry())
    if database:
        registry.register(DatabaseCollector())
    return registry


def metrics_render(*, database: bool = True) -> bytes:
    return generate_latest(metrics_registry(database=database))


def scrape_allowed(authorization: str, remote_addr: str) -> bool:
    """A scrape is allowed with ``Authorization: Bearer <METRICS_TOKEN>`` or from an address in
    ``METRICS_ALLOWED_NETWORKS``; with neither configured, never."""
    token = settings.METRICS_TOKEN
    if (
        token
        and authorization.startswith("Bearer ")
        and hmac.compare_digest(authorization[7:].strip(), token)
    ):
        return True
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    return any(address in network for network in settings.METRICS_ALLOWED_NETWORKS)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not scrape_allowed(request.META.get("HTTP_AUTHORIZATION", ""), request.META.get("REMOTE_ADDR", "")):
        # The same answer whether or not metrics are configured, so it says nothing to a prober.
        return HttpResponse("Forbidden\n", status=403, content_type="text/plain")
    return HttpResponse(metrics_render(), content_type=CONTENT_TYPE_LATEST)


def process_dead(pid: int) -> None:
    """Called by gunicorn's ``child_exit`` hook: drop a dead worker's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
