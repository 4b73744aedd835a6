"""Processes that die with their parent.

A django-q2 cluster is three levels deep: ``manage.py qcluster`` forks a sentinel, which forks the
workers, the pusher and the monitor. When the top process is killed outright (SIGKILL, the OOM
killer, a supervisor that gives up waiting) django-q2 leaves the sentinel and its children running:
the orphaned pusher keeps taking tasks and its workers keep running them, so after a restart two
clusters ran side by side. Linux can tie a child's life to its parent's:
``prctl(PR_SET_PDEATHSIG, SIGTERM)`` asks the kernel to signal the child when its parent exits. It
is set in every child forked from the qcluster process (``os.register_at_fork``, inherited by the
sentinel's own forks), so killing the top process stops the whole tree, level by level.

The shipped process definitions also stop the whole group themselves (systemd
``KillMode=control-group``; a Procfile runner signals the process group).
"""

from __future__ import annotations

import ctypes
import logging
import os
import signal
import sys

PR_SET_PDEATHSIG = 1
logger = logging.getLogger(__name__)
_installed = False


def _set_parent_death_signal(expected_parent: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0) != 0:
        logger.warning("prctl(PR_SET_PDEATHSIG) failed: errno %s", ctypes.get_errno())
        return
    # The parent may have died between fork and prctl; then nobody will signal us.
    if os.getppid() != expected_parent:
        os._exit(1)


def die_with_parent() -> bool:
    """From now on, every child forked from this process (and from its children) is stopped when
    its parent exits. Linux only; elsewhere it does nothing and says so."""
    global _installed
    if _installed:
        return True
    if not sys.platform.startswith("linux"):
        logger.warning("Children cannot be tied to their parent's life on %s", sys.platform)
        return False
    parent = {"pid": os.getpid()}

    def before() -> None:
        parent["pid"] = os.getpid()

    def child() -> None:
        _set_parent_death_signal(parent["pid"])

    os.register_at_fork(before=before, after_in_child=child)
    _installed = True
    return True


def _task_started(sender: object, func: object, task: dict, **kwargs: object) -> None:
    from config.logconfig import log_context_bind, log_context_clear

    log_context_clear()
    log_context_bind(task=task.get("name") or task.get("id"))


def _task_finished(sender: object, task: dict, **kwargs: object) -> None:
    # post_execute_in_worker: the worker's own signal (post_execute is sent in the monitor process,
    # so clearing there would leave a finished task's name on the worker's next log lines).
    from config.logconfig import log_context_clear

    log_context_clear()


def qcluster_hooks_install(*, argv: list[str] | None = None) -> None:
    """Called from the sync app's ``ready()``: in a ``qcluster`` process, tie children to their
    parent; in every process, name the django-q2 task in the log lines it writes."""
    from django_q.signals import post_execute_in_worker, pre_execute

    pre_execute.connect(_task_started, dispatch_uid="giftline-task-log-context")
    post_execute_in_worker.connect(_task_finished, dispatch_uid="giftline-task-log-context-end")
    if (argv if argv is not None else sys.argv)[1:2] == ["qcluster"]:
        die_with_parent()
