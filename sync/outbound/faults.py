"""Named fault points in the submitter, for tests/reliability to kill a worker at an exact place.

Production code only calls ``fault_point(name)``, which does nothing unless a hook is installed.
The only installer is the test settings (``config/settings_test.py``), so no production process
can reach a fault, whatever its environment says.
"""

from __future__ import annotations

from collections.abc import Callable

_hook: Callable[[str], None] | None = None


def fault_point(name: str) -> None:
    """Hand ``name`` to the installed hook; a no-op without one."""
    if _hook is not None:
        _hook(name)


def fault_hook_install(hook: Callable[[str], None] | None) -> None:
    """Install (or, with None, remove) the hook every fault point calls."""
    global _hook
    _hook = hook
