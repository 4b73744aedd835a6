"""The benchmark suite: `make bench` (full) or `make bench-quick` (CI's smoke run).

    .venv/bin/python bench/run.py [--quick] [--only ingest,submit,...] [--profile]
                                  [--latency 500,0.3,0.01,2000] [--capacity-sizes 100,200]

Every run gets its own PostgreSQL (a private cluster on a loopback port when run as root, so
that hundreds of drain threads have connections without starving anyone else's server;
otherwise a database created on the local server), Redis DB 7 under a run-unique key prefix,
its own gunicorn servers on loopback ports, and, for every benchmark that calls Virtuous, the
lightweight fake (``bench/fake_virtuous.py``) pinned to the last core. Every load loop is
bounded in count and in time. Results go to bench/results/latest.json and latest.md (quick.*
for --quick); BENCHMARKS.md quotes them.

Modules: common (infrastructure, the fake's process), fixtures (tenants, backlogs, signed
events), fake_virtuous and fake_payloads (the fake itself), throughput (1 ingest, 2 submitter,
4 bulk import), budget (3 budget use and fairness, 6 scale-out, 7 tenants per machine),
giving_day (5 freshness with and without neighbours, 8 the giving day), report (the table).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import budget, giving_day, throughput
from bench.common import RESULTS, Bench, loadavg, log
from bench.fixtures import quiesce
from bench.report import machine, render

BENCHMARKS = {
    "ingest": throughput.bench_ingest,
    "submit": throughput.bench_submit,
    "fairness": budget.bench_fairness,
    "bulk": throughput.bench_bulk,
    "freshness": giving_day.bench_freshness,
    "scaleout": budget.bench_scaleout,
    "capacity": budget.bench_capacity,
    "givingday": giving_day.bench_givingday,
}


def _terminate(signum, frame) -> None:
    raise SystemExit(128 + signum)


def parse_latency(text: str) -> dict[str, float]:
    """``median_ms[,sigma[,tail_rate[,tail_ms]]]`` → the fake's latency knobs."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not numbers: {text}") from exc
    if not 1 <= len(values) <= 4 or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError("expected median_ms[,sigma[,tail_rate[,tail_ms]]], none negative")
    names = ("latency_ms", "sigma", "tail_rate", "tail_ms")
    return dict(zip(names, values + [0.0] * (4 - len(values)), strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="Toy sizes, every benchmark once (CI)")
    parser.add_argument("--only", default="", help=f"Comma-separated subset of: {', '.join(BENCHMARKS)}")
    parser.add_argument(
        "--profile",
        action="store_true",
        help="Also profile ingest (py-spy), the submitter (py-spy, on-CPU samples) and PostgreSQL's statements "
        "(pg_stat_statements, per benchmark)",
    )
    parser.add_argument("--capacity-sizes", default="", help="Tenant counts for benchmark 7, e.g. 100,200")
    parser.add_argument(
        "--capacity-dispatchers",
        type=int,
        default=os.cpu_count() or 1,
        help="Dispatcher processes for benchmark 7 (default: one per core, as a deployment runs them)",
    )
    parser.add_argument(
        "--latency",
        type=parse_latency,
        default="500,0.3,0.01,2000",
        help="The fake's answer time where Virtuous is 'at 500 ms': median ms, lognormal sigma, "
        "share of tail answers, tail median ms (default 500,0.3,0.01,2000)",
    )
    parser.add_argument(
        "--fake-cpu",
        default="auto",
        help="Core to pin the fake Virtuous to with taskset ('auto': the last core when there are "
        "two or more; 'none': not pinned)",
    )
    args = parser.parse_args()
    chosen = [b for b in (args.only.split(",") if args.only else BENCHMARKS) if b]
    unknown = set(chosen) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
    if "ingest" in chosen and not shutil.which("wrk"):
        print("wrk is missing: apt-get install -y wrk", file=sys.stderr)
        return 2
    if args.fake_cpu == "auto":
        fake_cpu = (
            (os.cpu_count() or 1) - 1 if (os.cpu_count() or 1) >= 2 and shutil.which("taskset") else None
        )
    else:
        fake_cpu = None if args.fake_cpu == "none" else int(args.fake_cpu)
    sizes = tuple(int(n) for n in args.capacity_sizes.split(",") if n)
    bench = Bench(quick=args.quick, profile=args.profile, capacity_sizes=sizes, fake_cpu=fake_cpu)
    bench.latency = args.latency
    bench.capacity_dispatchers = max(1, args.capacity_dispatchers)
    bench.results["machine"] = machine()
    bench.results["fake_cpu"] = "not pinned" if fake_cpu is None else f"pinned to core {fake_cpu}"
    bench.results["latency"] = args.latency
    bench.results["order"] = chosen
    RESULTS.mkdir(exist_ok=True)
    bench.results["command"] = " ".join(["bench/run.py", *sys.argv[1:]])
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _terminate)
    try:
        bench.setup()
        for name in chosen:
            log(f"== {name}")
            quiesce()
            before = loadavg()
            bench.pg_statements_reset()
            result = BENCHMARKS[name](bench)
            result.update(load_before=before, load_after=loadavg())
            if bench.profile:
                result["pg_statements"] = bench.pg_statements_top()
            bench.results[name] = result
    finally:
        bench.results["machine"]["load_after"] = loadavg()
        bench.results["total_s"] = time.monotonic() - started
        bench.teardown()
    stem = "quick" if args.quick else "latest"
    (RESULTS / f"{stem}.json").write_text(json.dumps(bench.results, indent=2, default=str))
    (RESULTS / f"{stem}.md").write_text(render(bench.results))
    log(f"done in {bench.results['total_s']:.0f} s; results in bench/results/{stem}.json and {stem}.md")
    missed = [name for name in chosen if not bench.results[name].get("target_met", True)]
    print("targets missed: " + (", ".join(missed) if missed else "none"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
