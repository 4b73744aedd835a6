"""A qcluster whose top process is SIGKILLed takes its sentinel, workers, pusher and monitor with it."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(c) for c in text.split()]


def _descendants(pid: int) -> list[int]:
    found = []
    for child in _children(pid):
        found += [child, *_descendants(child)]
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _redis_up() -> bool:
    import redis

    try:
        return bool(redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux only")
@pytest.mark.skipif(not _redis_up(), reason="needs Redis at 127.0.0.1:6379 (the broker of the cluster)")
def test_killing_the_qcluster_parent_stops_every_process_of_the_cluster(tmp_path):
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "config.settings_test",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "REDIS_URL": "redis://127.0.0.1:6379/12",
        "Q_WORKERS": "2",
        "Q_SCHEDULER": "false",
    }
    log = (tmp_path / "qcluster.log").open("wb")
    top = subprocess.Popen(
        [sys.executable, "manage.py", "qcluster"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    try:
        # The sentinel, 2 workers, the pusher and the monitor.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(_descendants(top.pid)) < 5:
            time.sleep(0.2)
        tree = _descendants(top.pid)
        assert len(tree) >= 5, (tmp_path / "qcluster.log").read_text()
        os.kill(top.pid, signal.SIGKILL)
        top.wait(timeout=10)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and any(_alive(pid) for pid in tree):
            time.sleep(0.2)
        survivors = [pid for pid in tree if _alive(pid)]
        assert survivors == [], f"orphaned cluster processes: {survivors}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(top.pid, signal.SIGKILL)  # its own session: only what this test started


def test_a_finished_task_leaves_no_name_on_the_workers_next_log_lines():
    """The worker logs "processing <task>" before pre_execute: the previous task's name must be gone
    by then, so it is cleared on the worker's own post-execute signal."""
    from django_q.signals import post_execute_in_worker, pre_execute

    from config.logconfig import log_context_clear, log_context_get

    log_context_clear()
    pre_execute.send(sender="django_q", func=print, task={"name": "reconcile-daily-1", "id": "x"})
    assert log_context_get() == {"task": "reconcile-daily-1"}
    post_execute_in_worker.send(sender="django_q", func=print, task={"name": "reconcile-daily-1"})
    assert log_context_get() == {}
