"""The shipped production profile passes Django's deployment checks as it stands."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_check_deploy_is_clean_under_the_production_profile(tmp_path):
    sample = (ROOT / "deploy" / "giftline.env.sample").read_text()
    env = {
        # Only the basics of this environment: the test settings put their own defaults in it.
        **{k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TMPDIR")},
        **dict(re.findall(r"^([A-Z][A-Z0-9_]+)=(.*)$", sample, re.MULTILINE)),
        "DJANGO_SETTINGS_MODULE": "config.settings",
        "GIFTLINE_ENV_FILE": "/nonexistent",
        "SECRET_KEY": "deploy-check-" + "s" * 60,
        "CREDENTIAL_KEYS": "nEWbZyXvNSbU2gSHgcR0zUfhNfK3kE1wYv0kbD9Z8Vg=",
        "METRICS_TOKEN": "deploy-check-metrics-token",
        "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy", "--fail-level", "WARNING"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
