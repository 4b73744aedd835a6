"""Test settings: the same settings module, with test-only environment defaults.

Only overrides live here (fixed test keys, a fast hasher), and the one test-only hook: the
submitter's fault points, which production settings never install.
"""

import os

os.environ.setdefault("SECRET_KEY", "test-secret-key-not-for-production-0123456789abcdef")
# Two fixed keys: the first encrypts, the second exists so rotation paths are exercised.
os.environ.setdefault(
    "CREDENTIAL_KEYS",
    "nEWbZyXvNSbU2gSHgcR0zUfhNfK3kE1wYv0kbD9Z8Vg=,0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld0ld0=",
)
os.environ.setdefault("ALLOW_PRIVATE_NETWORK_URLS", "true")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")
os.environ.setdefault("SECURE_SSL_REDIRECT", "false")
os.environ.setdefault("SANDBOX_ENABLED", "true")
# Tests stand in for Virtuous at virtuous.test (responses mocks) besides the sandbox's hosts.
os.environ.setdefault("VIRTUOUS_ALLOWED_HOSTS", "api.virtuoussoftware.com,virtuous.test")
os.environ.setdefault("GIFTLINE_ENV_FILE", "/nonexistent-test-env-file")
# Token buckets in the test database, whatever REDIS_URL says; the Redis backend has its own tests.
os.environ.setdefault("RATE_LIMIT_BACKEND", "database")
# Scrape-time database figures are read afresh in every test.
os.environ.setdefault("METRICS_DATABASE_CACHE_SECONDS", "0")

# Tests run with DEBUG off, the sandbox and loopback URLs on: acknowledged here, and only here.
os.environ.setdefault("SANDBOX_ENABLED_ACKNOWLEDGED", "true")
os.environ.setdefault("ALLOW_PRIVATE_NETWORK_URLS_ACKNOWLEDGED", "true")

from config.settings import *  # noqa: F403

GIFTLINE_TEST_SETTINGS = True

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Tasks run inline in tests, so on_commit → async_task side effects (alert delivery) are observable.
Q_CLUSTER = {**Q_CLUSTER, "sync": True}  # noqa: F405

# A file, not shared-cache memory, for the SQLite test database: threaded tests (dispatch)
# then behave like the embedded deployment (WAL, busy timeout) instead of failing on
# shared-cache table locks.
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":  # noqa: F405
    # One file per test process, so two runs in one checkout (CI beside a developer) never collide.
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "var" / f"test-db-{os.getpid()}.sqlite3")}  # noqa: F405
    (BASE_DIR / "var").mkdir(exist_ok=True)  # noqa: F405

# tests/reliability kills drain subprocesses (started with these settings) at a named fault point,
# or holds them there until the file GIFTLINE_FAULT_RELEASE appears (a stalled, then resumed holder).
GIFTLINE_FAULT_POINT = env.str("GIFTLINE_FAULT_POINT", default="")  # noqa: F405
if GIFTLINE_FAULT_POINT:
    from sync.outbound.faults import fault_hook_install
    from tests.reliability.faults import block_at

    _release = env.str("GIFTLINE_FAULT_RELEASE", default="")  # noqa: F405
    fault_hook_install(block_at(GIFTLINE_FAULT_POINT, release=_release))
