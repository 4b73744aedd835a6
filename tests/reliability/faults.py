"""The fault hook the test settings install: block a drain forever at the point the test names.

``GIFTLINE_FAULT_POINT`` (read by ``config/settings_test.py`` only) names the point; when a drain
reaches it, the hook says so on stderr and blocks, so the test can SIGKILL the worker exactly there.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable


def block_at(point: str) -> Callable[[str], None]:
    def hook(name: str) -> None:
        if name != point:
            return
        sys.stderr.write(f"fault point {name} reached\n")
        sys.stderr.flush()
        while True:
            time.sleep(3600)

    return hook
