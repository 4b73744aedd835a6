"""What every benchmark shares: the run's PostgreSQL, Redis and processes, CPU and memory from
/proc, the lightweight fake Virtuous's process (``bench/fake_virtuous.py``), profiles. The rows
the benchmarks create are in ``bench/fixtures.py``."""

from __future__ import annotations

import glob
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PY = str(ROOT / ".venv" / "bin" / "python")
GUNICORN = str(ROOT / ".venv" / "bin" / "gunicorn")
RESULTS = ROOT / "bench" / "results"
WEBHOOK_SECRET = os.environ.get("BENCH_WEBHOOK_SECRET") or "whsec_bench_" + uuid.uuid4().hex
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User+system CPU of one live process (from /proc)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def reaped_cpu_seconds(pid: int) -> float:
    """CPU of a process's children that have exited (postgres backends of closed connections)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[13]) + int(fields[14])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root_pid: int) -> float:
    """CPU of a process, its live descendants (gunicorn workers, postgres backends) and the
    children it has reaped."""
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    total, stack = reaped_cpu_seconds(root_pid), [root_pid]
    while stack:
        pid = stack.pop()
        total += cpu_seconds(pid)
        stack.extend(children.get(pid, []))
    return total


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def jain(values: list[float]) -> float:
    total, squares = sum(values), sum(v * v for v in values)
    return (total * total) / (len(values) * squares) if squares else 0.0


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo, hi = math.floor(k), math.ceil(k)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# --- infrastructure -------------------------------------------------------------------------


class Bench:
    def __init__(
        self,
        quick: bool,
        profile: bool,
        capacity_sizes: tuple[int, ...] = (),
        fake_cpu: int | None = None,
    ) -> None:
        self.quick = quick
        self.capacity_sizes = capacity_sizes
        self.capacity_dispatchers = 1
        self.fake_cpu = fake_cpu
        self.latency: dict[str, float] = {}  # the fake's knobs where Virtuous is "at 500 ms"
        self.profile = profile
        self.tmp = Path(tempfile.mkdtemp(prefix="giftline-bench-"))
        os.chmod(self.tmp, 0o755)
        self.processes: list[subprocess.Popen] = []
        self.spawned = 0
        self.pg_stop = None
        self.postmaster_pid: int | None = None
        self.results: dict = {}
        self.run_id = uuid.uuid4().hex[:8]

    # PostgreSQL ------------------------------------------------------------------------------
    def pg_start(self) -> str:
        bins = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if os.geteuid() == 0 and bins and shutil.which("runuser"):
            bindir = Path(bins[-1]).parent
            data = self.tmp / "pg"
            data.mkdir()
            shutil.chown(data, "postgres", "postgres")
            port = free_port()
            as_pg = ["runuser", "-u", "postgres", "--"]
            subprocess.run(
                [
                    *as_pg,
                    str(bindir / "initdb"),
                    "-D",
                    str(data),
                    "-U",
                    "postgres",
                    "-A",
                    "trust",
                    "--no-sync",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            options = (
                f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={data} "
                "-c max_connections=1000 -c shared_buffers=256MB"
            )
            if self.profile:  # where PostgreSQL's CPU goes, statement by statement
                options += " -c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=all"
            subprocess.run(
                [
                    *as_pg,
                    str(bindir / "pg_ctl"),
                    "-D",
                    str(data),
                    "-l",
                    str(data / "log"),
                    "-o",
                    options,
                    "-w",
                    "start",
                ],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            self.postmaster_pid = int((data / "postmaster.pid").read_text().split()[0])
            self.pg_stop = lambda: subprocess.run(
                [*as_pg, str(bindir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"],
                stdout=subprocess.DEVNULL,
                check=False,
            )
            host = f"127.0.0.1:{port}"
            self.results["postgres"] = f"private cluster on port {port}, max_connections=1000, fsync on"
        else:
            host = "127.0.0.1:5432"
            self.results["postgres"] = "local server (createdb/dropdb per run)"
        name = f"giftline_bench_{self.run_id}"
        h, p = host.split(":")
        subprocess.run(["createdb", "-h", h, "-p", p, "-U", "postgres", name], check=True)
        previous = self.pg_stop

        def stop() -> None:
            subprocess.run(["dropdb", "-h", h, "-p", p, "-U", "postgres", "--if-exists", name], check=False)
            if previous:
                previous()

        self.pg_stop = stop
        return f"postgres://postgres@{host}/{name}"

    def env(self, **extra: str) -> dict[str, str]:
        env = dict(self.base_env)
        env.update({k: str(v) for k, v in extra.items()})
        return env

    def setup(self) -> None:
        from cryptography.fernet import Fernet

        database_url = self.pg_start()
        self.base_env = {
            **{k: v for k, v in os.environ.items() if k not in ("DJANGO_SETTINGS_MODULE",)},
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "DATABASE_URL": database_url,
            "REDIS_URL": "redis://127.0.0.1:6379/7",
            "RATE_LIMIT_REDIS_PREFIX": f"giftline:bench:{self.run_id}:",
            "SANDBOX_ENABLED": "true",
            "ALLOW_PRIVATE_NETWORK_URLS": "true",
            # DEBUG is off, so the deploy checks want both acknowledged (loopback fake, bench only)
            "SANDBOX_ENABLED_ACKNOWLEDGED": "true",
            "ALLOW_PRIVATE_NETWORK_URLS_ACKNOWLEDGED": "true",
            "DEBUG": "false",
            "SECRET_KEY": "bench-" + uuid.uuid4().hex * 2,
            "CREDENTIAL_KEYS": Fernet.generate_key().decode(),
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "SECURE_SSL_REDIRECT": "false",
            "LOG_LEVEL": "WARNING",
            "BENCH_WEBHOOK_SECRET": WEBHOOK_SECRET,
            "PYTHONPATH": str(ROOT),
        }
        os.environ.update(self.base_env)
        subprocess.run(
            [PY, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=self.env(), check=True
        )
        import django

        django.setup()
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute("CREATE TABLE bench_capture (event_id text PRIMARY KEY, body bytea NOT NULL)")

    def pg_statements_reset(self) -> None:
        """With --profile on the private cluster: start counting statements afresh."""
        if self.profile and self.postmaster_pid:
            from django.db import connection

            with connection.cursor() as cursor:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                cursor.execute("SELECT pg_stat_statements_reset()")

    def pg_statements_top(self, limit: int = 15) -> list[dict]:
        """The statements PostgreSQL spent most time on since the reset (plan + execution), with what
        each touched."""
        if not (self.profile and self.postmaster_pid):
            return []
        from django.db import connection

        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT calls, total_plan_time + total_exec_time, total_plan_time, max_exec_time, rows, "
                "shared_blks_hit + shared_blks_read, shared_blks_dirtied, wal_records, left(query, 300) "
                "FROM pg_stat_statements ORDER BY 2 DESC LIMIT %s",
                [limit],
            )
            return [
                {
                    "calls": calls,
                    "total_ms": round(total, 1),
                    "plan_ms": round(plan, 1),
                    # Spikes (a lock wait, a checkpoint) show in the longest; the work a call does in
                    # the pages it touched, dirtied and the WAL records it wrote (an index entry each).
                    "max_ms": round(longest, 1),
                    "rows": rows,
                    "blocks": blocks,
                    "dirtied": dirtied,
                    "wal_records": wal,
                    "query": query,
                }
                for calls, total, plan, longest, rows, blocks, dirtied, wal, query in cursor.fetchall()
            ]

    def teardown(self) -> None:
        for process in list(self.processes):
            self.stop(process)
        try:
            from django.db import connections

            connections.close_all()
        except Exception:
            pass
        try:
            import redis

            client = redis.Redis.from_url("redis://127.0.0.1:6379/7")
            keys = list(client.scan_iter(f"giftline:bench:{self.run_id}:*"))
            if keys:
                client.delete(*keys)
        except Exception:
            pass
        if self.pg_stop:
            self.pg_stop()
        # The children's logs outlive the run (bench/results/logs/, replaced each run): a stall
        # or an error in a drain is read there.
        logs = RESULTS / "logs"
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir(parents=True, exist_ok=True)
        for path in self.tmp.glob("process-*.log"):
            shutil.copy(path, logs / path.name)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # processes -------------------------------------------------------------------------------
    def spawn(self, args: list[str], *, capture: bool = False, **env: str) -> subprocess.Popen:
        """Start a child in its own session. Its output goes to a log file under the run's temporary
        directory (``process.log_path``), or to a pipe with ``capture`` for a caller that reads it
        all the time: a pipe nobody reads fills at 64 KB and then blocks the child's next log line,
        which stalled the drains of every run that logged a few hundred warnings."""
        self.spawned += 1
        log_path = self.tmp / f"process-{self.spawned}-{Path(args[1] if len(args) > 1 else args[0]).name}.log"
        output = subprocess.PIPE if capture else log_path.open("w")
        process = subprocess.Popen(
            args,
            cwd=ROOT,
            env=self.env(**env),
            stdout=output,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        if not capture:
            output.close()  # the child holds its own descriptor
        process.log_path = log_path  # type: ignore[attr-defined]
        self.processes.append(process)
        return process

    def stop(self, process: subprocess.Popen) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if process in self.processes:
            self.processes.remove(process)

    def gunicorn(self, *, workers: int, threads: int, **env: str) -> tuple[subprocess.Popen, str]:
        port = free_port()
        process = self.spawn(
            [
                GUNICORN,
                "config.wsgi:application",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(workers),
                "--worker-class",
                "gthread",
                "--threads",
                str(threads),
                "--backlog",
                "2048",
                "--log-level",
                "warning",
            ],
            **env,
        )
        url = f"http://127.0.0.1:{port}"
        import requests

        for _ in range(150):
            try:
                requests.get(url + "/bench/ok/", timeout=1)
                return process, url
            except requests.RequestException:
                time.sleep(0.1)
        raise RuntimeError(f"gunicorn on {port} did not start: {process.log_path.read_text()[-3000:]}")


# The subprocess module reaps children itself; to get a child's rusage we wait for it with
# os.wait4 before Popen does, then tell Popen the exit status.
def run_measured(bench: Bench, args: list[str], *, timeout: float, **env: str) -> tuple[str, float, float]:
    started = time.monotonic()
    process = bench.spawn(args, capture=True, **env)
    deadline = started + timeout
    output_chunks: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: output_chunks.append(process.stdout.read()), daemon=True)
    reader.start()
    while True:
        pid, status, usage = os.wait4(process.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGKILL)
            os.wait4(process.pid, 0)
            raise RuntimeError(f"{' '.join(args)} exceeded {timeout} s")
        time.sleep(0.02)
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    reader.join(timeout=5)
    bench.processes.remove(process)
    output = "".join(output_chunks)
    if process.returncode:
        raise RuntimeError(f"{' '.join(args)} failed ({process.returncode}):\n{output[-3000:]}")
    return output, wall, usage.ru_utime + usage.ru_stime


# --- the lightweight fake Virtuous ---------------------------------------------------------


class FakeVirtuous:
    """One ``bench/fake_virtuous.py`` process for a benchmark, pinned with ``taskset`` to the
    run's fake core when there is one, so its CPU is its own and never a drain's."""

    def __init__(
        self,
        bench: Bench,
        *,
        latency_ms: float = 0.0,
        sigma: float = 0.0,
        tail_rate: float = 0.0,
        tail_ms: float = 0.0,
    ) -> None:
        import requests

        self.bench = bench
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.latency = {"median_ms": latency_ms, "sigma": sigma, "tail_rate": tail_rate, "tail_ms": tail_ms}
        args = [PY, "-m", "bench.fake_virtuous", "--port", str(self.port), "--seed", "17",
                "--latency-ms", str(latency_ms), "--latency-sigma", str(sigma), "--tail-rate", str(tail_rate),
                "--tail-ms", str(tail_ms)]  # fmt: skip
        if bench.fake_cpu is not None:
            args = ["taskset", "-c", str(bench.fake_cpu), *args]
        self.process = bench.spawn(args)
        self.session = requests.Session()
        for _ in range(100):
            try:
                self.stats()
                break
            except requests.RequestException:
                time.sleep(0.05)
        else:
            raise RuntimeError(
                f"the fake Virtuous did not start: {self.process.log_path.read_text()[-3000:]}"
            )
        self.started_cpu = tree_cpu_seconds(self.process.pid)

    def _post(self, path: str, body: dict) -> dict:
        response = self.session.post(self.url + path, json=body, timeout=60)
        response.raise_for_status()
        return response.json()

    def _get(self, path: str, **params) -> dict:
        response = self.session.get(self.url + path, params=params, timeout=60)
        response.raise_for_status()
        return response.json()

    def add_orgs(self, orgs: list[dict]) -> None:
        for start in range(0, len(orgs), 500):
            self._post("/_fake/orgs", {"orgs": orgs[start : start + 500]})

    def update(self, names: list[str], **fields) -> None:
        self._post("/_fake/update", {"names": names, **fields})

    def stats(self) -> dict:
        return self._get("/_fake/stats")

    def usage(self, start: float, end: float) -> dict[str, int]:
        """Requests answered 2xx per organisation that arrived in [start, end)."""
        return self._get("/_fake/usage", start=repr(start), end=repr(end))

    def gifts(self, names: list[str] | None = None) -> dict[str, dict[str, tuple[int, float]]]:
        """Per organisation: transactionId -> (times received, first accepted at)."""
        raw = self._get("/_fake/gifts", **({"org": names} if names else {}))
        return {name: {row[1]: (row[2], row[3]) for row in rows} for name, rows in raw.items()}

    def cpu_seconds(self) -> float:
        return tree_cpu_seconds(self.process.pid)

    def stop(self) -> dict:
        """Stop the process; returns its last stats (CPU, counters) for the result."""
        stats = self.stats()
        stats["cpu_s_measured"] = self.cpu_seconds() - self.started_cpu
        self.bench.stop(self.process)
        return stats


def summarise_fake(stats: dict) -> dict:
    """The fake's own cost over a benchmark: CPU per API request (its control calls, which the
    harness makes, left out), peak memory, the most requests it held at once."""
    requests = max(stats["requests"], 1)
    cpu = stats["cpu_s_measured"] - stats["control_cpu_s"]
    return {
        "requests": stats["requests"],
        "cpu_s": round(cpu, 3),
        "cpu_us_per_request": round(1e6 * cpu / requests, 1),
        "peak_rss_mb": round(stats["peak_rss_mb"], 1),
        "max_in_flight": stats["max_in_flight"],
    }


def tree_peak_rss_mb(root_pid: int) -> float:
    """Peak RSS of a process plus its live descendants' (gunicorn master and workers)."""
    children: dict[int, list[int]] = {}
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.split("/")[2]))
    total, stack = 0.0, [root_pid]
    while stack:
        pid = stack.pop()
        total += rss_mb(pid)
        stack.extend(children.get(pid, []))
    return total


class CpuMeter:
    """CPU used by named process trees between ``__init__`` and ``read`` (cores = CPU s / wall s)."""

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = {name: pid for name, pid in pids.items() if pid}
        self.started = time.monotonic()
        self.start = {name: tree_cpu_seconds(pid) for name, pid in self.pids.items()}

    def read(self) -> dict[str, float]:
        elapsed = max(time.monotonic() - self.started, 1e-9)
        return {
            name: round((tree_cpu_seconds(pid) - self.start[name]) / elapsed, 3)
            for name, pid in self.pids.items()
        }


def redis_pid() -> int | None:
    """The Redis server's pid when it runs on this machine (its CPU is the token buckets')."""
    try:
        import redis

        pid = int(redis.Redis.from_url("redis://127.0.0.1:6379/7").info("server")["process_id"])
    except Exception:
        return None
    return pid if Path(f"/proc/{pid}").exists() else None


def loadavg() -> list[str]:
    return Path("/proc/loadavg").read_text().split()[:3]


def summarise_collapsed(path: Path, top: int = 25) -> str:
    """Inclusive share of samples per function in a collapsed-stack file, top ``top`` below the
    server's own request loop (gunicorn and threading frames are left out)."""
    inclusive: dict[str, int] = {}
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        total += int(count)
        seen = set()
        for frame in stack.split(";"):
            func, _, where = frame.partition(" (")
            where = where.rsplit(":", 1)[0]
            where = where.split("site-packages/")[-1].replace(str(ROOT) + "/", "")
            name = f"{func} ({where})"
            if name not in seen and not where.startswith(("gunicorn", "threading", "concurrent", "<frozen")):
                seen.add(name)
                inclusive[name] = inclusive.get(name, 0) + int(count)
    ranked = sorted(inclusive.items(), key=lambda kv: -kv[1])[:top]
    shutil.copy(path, RESULTS / path.name)
    return "\n".join(f"{100 * n / max(total, 1):5.1f}%  {name}" for name, n in ranked)


def profile_process(bench: Bench, pid: int, *, seconds: float, name: str) -> str:
    """Wall-clock samples (idle threads included) of every thread of ``pid`` for ``seconds``:
    where a dispatcher's drain threads spend their time — sleeping for budget, on HTTP, on the database."""
    spy = str(ROOT / ".venv/bin/py-spy")
    out = bench.tmp / f"{name}.txt"
    subprocess.run(
        [spy, "record", "--pid", str(pid), "--idle", "--format", "raw", "-o", str(out), "--rate", "50",
         "--duration", str(max(1, int(seconds))), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=seconds + 30, check=False,
    )  # fmt: skip
    return summarise_collapsed(out, top=40) if out.exists() else "(py-spy produced no samples)"


def dispatcher(bench, *, seconds: float, threads: int | None = None, **env) -> subprocess.Popen:
    """``manage.py outbound_drain`` for every due tenant; ``threads=None`` keeps the settings' default."""
    args = [PY, "manage.py", "outbound_drain", "--seconds", str(seconds)]
    return bench.spawn(args + (["--threads", str(threads)] if threads else []), **env)
