"""Webhook-to-Virtuous benchmarks against the lightweight fake: the giving day, and freshness
with and without 200 backlogged neighbours (5).

Both run the whole path as deployed: signed Stripe webhooks into gunicorn serving the real
``/hooks/<token>/``, one inbound drain mapping them into queue items, one outbound dispatcher
(the settings' thread count) submitting them to the fake. A donation is "accepted" when the
fake first receives its gift transaction; freshness is that moment minus the moment our 2xx
reached the sender. Every acknowledged donation must be accepted exactly once.
"""

from __future__ import annotations

import os
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from bench.common import (
    PY,
    Bench,
    CpuMeter,
    FakeVirtuous,
    cpu_seconds,
    dispatcher,
    log,
    percentile,
    redis_pid,
    summarise_fake,
    tree_peak_rss_mb,
)
from bench.fixtures import fake_tenants, quiesce, sign, stripe_connection, stripe_event_template


class Pipeline:
    """The webhook server, one inbound drain and one outbound dispatcher, for ``seconds``."""

    def __init__(self, bench: Bench, *, seconds: float, web_workers: int = 2) -> None:
        self.bench = bench
        self.web, self.url = bench.gunicorn(workers=web_workers, threads=4)
        code = f"from sync.inbound.drain import inbound_drain; inbound_drain(seconds={seconds})"
        self.inbound = bench.spawn([PY, "manage.py", "shell", "-c", code])
        self.outbound = dispatcher(bench, seconds=seconds)

    def pids(self) -> dict[str, int | None]:
        return {"web": self.web.pid, "inbound drain": self.inbound.pid, "outbound drain": self.outbound.pid}

    def peak_rss_mb(self) -> dict[str, float]:
        return {name: round(tree_peak_rss_mb(pid), 1) for name, pid in self.pids().items()}

    def stop(self) -> None:
        for process in (self.inbound, self.outbound, self.web):
            self.bench.stop(process)


def post_webhooks(url: str, schedule: list[tuple[float, str, str]], *, workers: int = 24) -> dict:
    """Open loop: each (offset s, webhook token, id) is posted at its time whatever the answers
    before it. Returns per id the Unix time our 2xx arrived, and the non-2xx count."""
    import requests

    template = stripe_event_template()
    local = threading.local()
    acked: dict[str, float] = {}
    failed: list[str] = []
    lags: list[float] = []  # how late each post left: the driver kept up if this stays small
    started = time.monotonic() + 0.5

    def send(offset: float, token: str, event_id: str) -> None:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        time.sleep(max(0.0, started + offset - time.monotonic()))
        lags.append(time.monotonic() - started - offset)
        body = template.replace("@@ID@@", event_id)
        try:
            response = local.session.post(
                f"{url}/hooks/{token}/",
                data=body,
                headers={
                    "Content-Type": "application/json",
                    "Stripe-Signature": sign(body, int(time.time())),
                },
                timeout=30,
            )
        except requests.RequestException:
            failed.append(event_id)
            return
        if 200 <= response.status_code < 300:
            acked[f"pi_{event_id}"] = time.time()
        else:
            failed.append(event_id)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for entry in schedule:
            pool.submit(send, *entry)
    return {
        "acked": acked,
        "failed": len(failed),
        "send_s": time.monotonic() - started,
        "send_lag_p99_s": percentile(lags, 99),
    }


def await_accepted(fake: FakeVirtuous, expected: dict[str, dict[str, float]], *, timeout: float) -> dict:
    """Wait until every acknowledged gift (per organisation name) has arrived: poll the fake's
    counters (cheap) and fetch the gift lists (not cheap, and the fake is serving) only once
    the counts say they are complete, or at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        counts = fake.stats()["orgs"]
        late = time.monotonic() > deadline
        if late or all(counts[name]["gifts"] >= len(acks) for name, acks in expected.items()):
            seen = fake.gifts(list(expected))
            missing = sum(1 for name, acks in expected.items() for pi in acks if pi not in seen.get(name, {}))
            if not missing or late:
                return seen
        time.sleep(1.0)


def freshness_figures(expected: dict[str, dict[str, float]], seen: dict) -> dict:
    delays, lost, doubled = [], 0, 0
    for name, acks in expected.items():
        for pi, acked_at in acks.items():
            got = seen.get(name, {}).get(pi)
            if got is None:
                lost += 1
                continue
            doubled += got[0] > 1
            delays.append(got[1] - acked_at)
    acked = sum(len(a) for a in expected.values())
    unacked_accepted = sum(len(set(seen.get(n, {})) - set(a)) for n, a in expected.items())
    return {
        "acked": acked,
        "accepted": len(delays),
        "lost": lost,
        "doubled": doubled,
        "accepted_without_ack": unacked_accepted,
        "p50_s": percentile(delays, 50),
        "p99_s": percentile(delays, 99),
        "max_s": max(delays) if delays else float("nan"),
    }


def not_accepted(expected: dict[str, dict[str, float]], seen: dict, *, limit: int = 20) -> list[dict]:
    """Where each acknowledged gift the fake never accepted stands in our database (its capture
    row and its queue items), read before the run's database is dropped: late or lost, and why."""
    from integrations.models import InboundEvent
    from sync.models import OutboundItem

    report = []
    for slug, acks in expected.items():
        for pi in acks:
            if pi in seen.get(slug, {}) or len(report) >= limit:
                continue
            needle = f'"{pi}"'.encode()  # quoted: pi_x1 is not pi_x10
            events = [
                {"status": e.status, "reason": e.status_reason, "attempts": e.attempts, "result": e.result}
                for e in InboundEvent.objects.filter(tenant__slug=slug).only(
                    "body", "status", "status_reason", "attempts", "result"
                )
                if needle in bytes(e.body or b"")
            ]
            items = list(
                OutboundItem.objects.filter(tenant__slug=slug, external_id=pi).values(
                    "operation", "state", "attempts", "next_attempt_at", "submitted_at", "last_status_code",
                    "last_error_class", "last_error", "note", "depends_on__state",
                )
            )  # fmt: skip
            report.append({"tenant": slug, "gift": pi, "captured": events, "items": items})
    return report


def slowest(expected: dict[str, dict[str, float]], seen: dict, *, limit: int = 5) -> list[dict]:
    """The slowest accepted donations and where each waited, from our rows (read before the run's
    database is dropped): seconds after our 2xx at which the event was processed and each of its
    queue items (the donor's contact write, the gift) was created and submitted."""
    from sync.models import OutboundItem

    delays = sorted(
        ((got[1] - acked_at, slug, pi, acked_at) for slug, acks in expected.items() for pi, acked_at in acks.items()
         if (got := seen.get(slug, {}).get(pi)) is not None),
        reverse=True,
    )[:limit]  # fmt: skip
    report = []
    for delay, slug, pi, acked_at in delays:

        def after(moment, acked_at=acked_at) -> float | None:
            return round(moment.timestamp() - acked_at, 2) if moment else None

        gift = (
            OutboundItem.objects.filter(tenant__slug=slug, external_id=pi)
            .select_related("depends_on")
            .first()
        )
        items = [gift, gift.depends_on] if gift and gift.depends_on else [gift]
        report.append(
            {
                "tenant": slug,
                "gift": pi,
                "accepted_after_s": round(delay, 2),
                "items": [
                    {
                        "operation": i.operation,
                        "state": i.state,
                        "attempts": i.attempts,
                        "created_s": after(i.created_at),
                        "waiting_since_s": after(i.waiting_since),
                        "submitted_s": after(i.submitted_at),
                        "note": i.note,
                        "last_error": i.last_error[:200],
                    }
                    for i in items
                    if i is not None
                ],
            }
        )
    return report


def hop_delays(slugs: list[str]) -> dict[str, dict[str, float]]:
    """Where the time between a 2xx and Virtuous goes, from our own rows: capture to processed by
    the inbound drain, then queue item created to submitted (the call's answer included)."""
    from integrations.models import InboundEvent
    from sync.models import OutboundItem

    def spread(pairs) -> dict[str, float]:
        seconds = [(b - a).total_seconds() for a, b in pairs if a and b]
        return {"p50_s": percentile(seconds, 50), "p99_s": percentile(seconds, 99), "n": len(seconds)}

    events = InboundEvent.objects.filter(tenant__slug__in=slugs, processed_at__isnull=False)
    items = OutboundItem.objects.filter(tenant__slug__in=slugs, submitted_at__isnull=False)
    return {
        "inbound": spread(events.values_list("received_at", "processed_at")),
        "outbound": spread(items.values_list("created_at", "submitted_at")),
        "attempts_over_1": items.filter(attempts__gt=1).count(),
    }


# --- the giving day -----------------------------------------------------------------------


def bench_givingday(bench: Bench) -> dict:
    """200 tenants, 30 webhooks/s in total for 5 minutes, Zipf-spread (a few large tenants, a
    long tail); Virtuous at ~500 ms; each organisation 83 requests a minute (4,980/h) and each
    tenant a budget equal to it."""
    count, rate, duration = (10, 5.0, 10.0) if bench.quick else (200, 30.0, 300.0)
    limit, window = 83, 60
    fake = FakeVirtuous(bench, **bench.latency)
    tenants = []
    for n in range(count):
        tenant, connection = stripe_connection(
            f"gd-{n}", fake=fake, org={"limit": limit, "window": window},
            hourly_request_budget=limit * 3600 // window, budget_headroom_percent=0,
        )  # fmt: skip
        tenants.append((tenant, connection))
    weights = [1 / (n + 1) for n in range(count)]  # Zipf s=1: the largest gets 1/H(200) = 17%
    rng = random.Random(2026)
    schedule, offset, n = [], 0.0, 0
    while True:
        offset += rng.expovariate(rate)  # Poisson arrivals
        if offset >= duration:
            break
        index = rng.choices(range(count), weights)[0]
        schedule.append((offset, tenants[index][1].webhook_token, f"gd{index}x{n}"))
        n += 1
    drain_wait = 30.0 if bench.quick else 90.0
    pipeline = Pipeline(bench, seconds=duration + drain_wait + 60, web_workers=2 if bench.quick else 3)
    time.sleep(3)  # the drains have started
    pids = {
        **pipeline.pids(),
        "fake": fake.process.pid,
        "postgres": bench.postmaster_pid,
        "redis": redis_pid(),
    }
    meter = CpuMeter(pids)
    own_cpu = cpu_seconds(os.getpid())
    sent = post_webhooks(pipeline.url, schedule)
    cores_sending = meter.read()
    expected: dict[str, dict[str, float]] = {t.slug: {} for t, _ in tenants}
    for pi, acked_at in sent["acked"].items():
        index = int(pi[len("pi_gd") :].split("x")[0])
        expected[tenants[index][0].slug][pi] = acked_at
    seen = await_accepted(fake, expected, timeout=drain_wait)
    cores_total = meter.read()
    memory = pipeline.peak_rss_mb()
    pipeline.stop()
    stats = fake.stats()
    figures = freshness_figures(expected, seen)
    missing = not_accepted(expected, seen)
    slow = slowest(expected, seen)
    hops = hop_delays(list(expected))
    big = [tenants[i][0].slug for i in range(min(5, count))]
    largest = freshness_figures({k: expected[k] for k in big}, seen)
    tail = freshness_figures({k: v for k, v in expected.items() if k not in big}, seen)
    result = {
        "tenants": count,
        "rate_per_s": rate,
        "duration_s": duration,
        "events": len(schedule),
        "webhook_failures": sent["failed"],
        "send_s": sent["send_s"],
        "send_lag_p99_s": sent["send_lag_p99_s"],
        "limit": f"{limit}/{window} s",
        "latency": fake.latency,
        **figures,
        "largest_5": {k: largest[k] for k in ("acked", "p50_s", "p99_s")},
        "tail": {k: tail[k] for k in ("acked", "p50_s", "p99_s")},
        "largest_share": round(weights[0] / sum(weights), 3),
        "rate_limited_429": sum(o["rate_limited"] for o in stats["orgs"].values()),
        "contact_doubles": sum(o["contact_doubles"] for o in stats["orgs"].values()),
        "calls": sum(o["requests"] for o in stats["orgs"].values()),
        "cores_while_sending": cores_sending,
        "cores_until_accepted": cores_total,
        "load_driver_cpu_s": cpu_seconds(os.getpid()) - own_cpu,
        "peak_rss_mb": {**memory, "fake": round(stats["peak_rss_mb"], 1)},
        "not_accepted": missing,
        "slowest": slow,
        "hops": hops,
    }
    result["fake"] = summarise_fake(fake.stop())
    result["target_met"] = (
        figures["p50_s"] <= 2
        and figures["p99_s"] <= 10
        and figures["lost"] == 0
        and figures["doubled"] == 0
        and result["contact_doubles"] == 0  # a donor's contact sent twice is a doubled donor
        and result["rate_limited_429"] == 0
        and sent["failed"] == 0
    )
    log(f"giving day: {result}")
    return result


# --- 5. freshness with and without backlogged neighbours ----------------------------------


def bench_freshness(bench: Bench) -> dict:
    """A newly onboarded tenant's live gifts, first alone, then beside 200 neighbours holding
    backlogs (a quarter paused, a quarter failing with 503s, half healthy, unbatched and paced
    by their budget), in the same run with the same pipeline settings."""
    from django.conf import settings

    from tenants import services as tenant_services

    events, rate = (10, 5.0) if bench.quick else (100, 5.0)
    neighbours = 10 if bench.quick else 200
    warm = 4.0 if bench.quick else 10.0
    fake = FakeVirtuous(bench, **bench.latency)
    result: dict = {
        "events": events,
        "rate_per_s": rate,
        "neighbour_count": neighbours,
        "latency": fake.latency,
    }
    for phase in ("alone", "neighbours"):
        quiesce()
        if phase == "neighbours":
            # Batching off: 300 items at 1.4 calls/s stay due for the whole phase.
            healthy = fake_tenants(
                fake, prefix="nb-ok", count=neighbours // 2, limit=14, window=10, items=300
            )
            failing = fake_tenants(
                fake, prefix="nb-fail", count=neighbours // 4, limit=14, window=10, items=300,
                org={"fail_rate": 1.0, "fail_status": 503},
            )  # fmt: skip
            paused = fake_tenants(fake, prefix="nb-paused", count=neighbours - neighbours // 2 - neighbours // 4,
                                  limit=14, window=10, items=300)  # fmt: skip
            for tenant in paused:
                tenant_services.tenant_pause(tenant=tenant, reason="benchmark: a paused neighbour")
            result["neighbour_mix"] = {
                "healthy": len(healthy),
                "failing": len(failing),
                "paused": len(paused),
            }
        # Neighbours hold backlogs, not live streaks: they have been due for longer than
        # OUTBOUND_FRESH_SECONDS when the newcomer's gifts arrive, and drained at least once (the
        # newcomer is the only never-drained tenant).
        settle = warm if phase == "alone" or bench.quick else max(warm, settings.OUTBOUND_FRESH_SECONDS + 5)
        pipeline = Pipeline(bench, seconds=settle + events / rate + 90)
        time.sleep(settle)
        slug = f"fresh-{phase}"
        tenant, connection = stripe_connection(
            slug, fake=fake, org={"limit": 10**6, "window": 3600},
            hourly_request_budget=10**6, budget_headroom_percent=0,
        )  # fmt: skip
        meter = CpuMeter({**pipeline.pids(), "fake": fake.process.pid, "postgres": bench.postmaster_pid})
        schedule = [(n / rate, connection.webhook_token, f"{phase}{n}") for n in range(events)]
        sent = post_webhooks(pipeline.url, schedule, workers=8)
        seen = await_accepted(fake, {slug: sent["acked"]}, timeout=60)
        trial = {
            **freshness_figures({slug: sent["acked"]}, seen),
            "webhook_failures": sent["failed"],
            "not_accepted": not_accepted({slug: sent["acked"]}, seen),
        }
        trial["cores"] = meter.read()
        pipeline.stop()
        result[phase] = trial
        log(f"freshness {phase}: {trial}")
    stats = fake.stop()
    result["fake"] = summarise_fake(stats)
    result["neighbour_429s"] = sum(o["rate_limited"] for n, o in stats["orgs"].items() if n.startswith("nb-"))
    alone, crowded = result["alone"], result["neighbours"]
    result["p99_ratio"] = crowded["p99_s"] / alone["p99_s"] if alone["p99_s"] else float("nan")
    result["target_met"] = (
        all(r["lost"] == 0 and r["doubled"] == 0 for r in (alone, crowded)) and result["p99_ratio"] <= 2.0
    )
    return result
