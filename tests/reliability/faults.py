"""The fault hook the test settings install: block a drain forever at the point the test names.

``GIFTLINE_FAULT_POINT`` (read by ``config/settings_test.py`` only) names the point; when a drain
reaches it, the hook says so on stderr and blocks, so the test can SIGKILL the worker exactly there.
With ``release`` (``GIFTLINE_FAULT_RELEASE``, a file path), it blocks only until that file exists
and then carries on: a holder the test stalls (SIGSTOP) and later resumes.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path


def block_at(point: str, release: str = "") -> Callable[[str], None]:
    def hook(name: str) -> None:
        if name != point:
            return
        sys.stderr.write(f"fault point {name} reached\n")
        sys.stderr.flush()
        while not (release and Path(release).exists()):
            time.sleep(0.05 if release else 3600)
        sys.stderr.write(f"fault point {name} released\n")
        sys.stderr.flush()

    return hook
