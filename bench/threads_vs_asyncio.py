"""Threads or asyncio for the drain's HTTP calls: our client-side CPU per call and memory, measured.

    .venv/bin/python bench/threads_vs_asyncio.py [--calls 2000] [--concurrency 200] [--latency-ms 500]

Starts the lightweight fake Virtuous (answering after --latency-ms) and makes the same calls two
ways, each in a fresh child process so CPU and peak RSS are its own: a thread pool with one
``requests`` session per thread (what the dispatcher does), and one asyncio loop with an
``httpx.AsyncClient``. Only the HTTP part differs; the ORM work around a call (claim, Attempt
rows, state) is the same sync code either way, so this isolates what the choice changes.
"""

from __future__ import annotations

import argparse
import json
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-threads-vs-asyncio"


def _threads(url: str, calls: int, concurrency: int) -> None:
    import threading
    from concurrent.futures import ThreadPoolExecutor

    import requests

    local = threading.local()

    def one(_: int) -> int:
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session.get(url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).status_code

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        statuses = list(pool.map(one, range(calls)))
    assert statuses.count(200) == calls, statuses[:5]


def _asyncio(url: str, calls: int, concurrency: int) -> None:
    import asyncio

    import httpx

    async def run() -> None:
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=30) as client:
            gate = asyncio.Semaphore(concurrency)

            async def one() -> int:
                async with gate:
                    response = await client.get(url, headers={"Authorization": f"Bearer {TOKEN}"})
                    return response.status_code

            statuses = await asyncio.gather(*(one() for _ in range(calls)))
        assert statuses.count(200) == calls, statuses[:5]

    asyncio.run(run())


def _asyncio_streams(url: str, calls: int, concurrency: int) -> None:
    """The floor of asyncio: keep-alive connections on bare streams, no client library."""
    import asyncio
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    request = (
        f"GET {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
    ).encode()

    async def connection(share: int) -> list[int]:
        reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
        statuses = []
        for _ in range(share):
            writer.write(request)
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":")[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length")
            )
            await reader.readexactly(length)
            statuses.append(int(head.split()[1]))
        writer.close()
        return statuses

    async def run() -> None:
        shares = [calls // concurrency + (1 if n < calls % concurrency else 0) for n in range(concurrency)]
        statuses = [s for part in await asyncio.gather(*(connection(n) for n in shares)) for s in part]
        assert statuses.count(200) == calls, statuses[:5]

    asyncio.run(run())


MODES = {"threads": _threads, "asyncio-httpx": _asyncio, "asyncio-streams": _asyncio_streams}


def child(mode: str, url: str, calls: int, concurrency: int) -> None:
    started, before = time.monotonic(), resource.getrusage(resource.RUSAGE_SELF)
    MODES[mode](url, calls, concurrency)
    after = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    print(json.dumps({
        "mode": mode, "calls": calls, "concurrency": concurrency, "wall_s": round(time.monotonic() - started, 2),
        "cpu_ms_per_call": round(1000 * cpu / calls, 3), "peak_rss_mb": round(after.ru_maxrss / 1024, 1),
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--latency-ms", type=float, default=500.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", nargs=2, metavar=("MODE", "URL"))
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.calls, args.concurrency)
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fake = subprocess.Popen(
        [sys.executable, "-m", "bench.fake_virtuous", "--port", str(port), "--latency-ms", str(args.latency_ms)],
        cwd=ROOT,
    )  # fmt: skip
    try:
        import requests

        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                requests.post(base + "/_fake/orgs", json={"orgs": [
                    {"name": "o", "token": TOKEN, "limit": 10**9, "window": 3600}]}, timeout=1)  # fmt: skip
                break
            except requests.ConnectionError:
                time.sleep(0.1)
        for _ in range(args.rounds):  # alternate, so both see the same machine
            for mode in MODES:
                subprocess.run(
                    [sys.executable, __file__, "--child", mode, base + "/api/Organization/Current",
                     "--calls", str(args.calls), "--concurrency", str(args.concurrency)],
                    cwd=ROOT, check=True,
                )  # fmt: skip
    finally:
        fake.terminate()
        fake.wait(timeout=10)


if __name__ == "__main__":
    main()
