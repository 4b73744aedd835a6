"""Run ``manage.py`` under cProfile timed by the process's CPU clock, so that waits on the network
and the database count for nothing: where the CPU went, not where the time went. Writes the top
functions by own CPU and by inclusive CPU to ``--out``, and the raw statistics beside it
(``--out`` with the suffix ``.prof``) for ``pstats``' callers and callees.

    python bench/cpu_profile.py --out FILE -- outbound_drain <tenant> --seconds 600
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import runpy
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--top", type=int, default=35)
    parser.add_argument("command", nargs=argparse.REMAINDER)
    options = parser.parse_args()
    command = [a for a in options.command if a != "--"]
    sys.argv = [str(ROOT / "manage.py"), *command]
    sys.path.insert(0, str(ROOT))
    profile = cProfile.Profile(time.process_time)
    try:
        profile.runcall(runpy.run_path, str(ROOT / "manage.py"), run_name="__main__")
    except SystemExit:
        pass
    finally:
        report = io.StringIO()
        stats = pstats.Stats(profile, stream=report).strip_dirs()
        stats.sort_stats("tottime").print_stats(options.top)
        stats.sort_stats("cumulative").print_stats(options.top)
        Path(options.out).write_text(report.getvalue())
        profile.dump_stats(Path(options.out).with_suffix(".prof"))


if __name__ == "__main__":
    main()
