"""Giftline settings: everything comes from the environment through ``config.env``.

No configuration at all gives the embedded default: SQLite and django-q2's ORM broker.
``DATABASE_URL`` switches to PostgreSQL (psycopg 3), ``REDIS_URL`` to the Redis broker.
Production safety (secret key, encryption keys, allowed hosts) is enforced by system checks
in ``tenants.checks``, so a bad deployment fails at startup, not at the first request.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

from django.core.exceptions import ImproperlyConfigured

from config.env import BASE_DIR, env, secret, strict_bool
from config.logconfig import logging_config
from config.sentry import sentry_init

DEBUG = strict_bool("DEBUG", default=False)
# Only meaningful in DEBUG; the system check refuses it when DEBUG is off.
INSECURE_DEV_SECRET_KEY = "django-insecure-giftline-local-development-only"
SECRET_KEY = secret("SECRET_KEY") or INSECURE_DEV_SECRET_KEY

ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"] if DEBUG else [])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# Fernet keys for credentials at rest, newest first. Old keys stay listed during a rotation
# so existing rows still decrypt; `manage.py credentials_rotate_key` re-encrypts under the first.
CREDENTIAL_KEYS = [k.strip() for k in (secret("CREDENTIAL_KEYS") or "").split(",") if k.strip()]

# Tenant-supplied URLs (Virtuous base URL, alert webhooks) may not point at private or loopback
# addresses unless this is on (the demo, the sandbox and the tests need loopback).
ALLOW_PRIVATE_NETWORK_URLS = strict_bool("ALLOW_PRIVATE_NETWORK_URLS", default=False)
# With DEBUG off, the sandbox and private-network URLs each need an explicit acknowledgement
# (giftline.E004/E005 in tenants/checks.py): a leftover demo .env must not open them silently.
ALLOW_PRIVATE_NETWORK_URLS_ACKNOWLEDGED = strict_bool(
    "ALLOW_PRIVATE_NETWORK_URLS_ACKNOWLEDGED", default=False
)
SANDBOX_ENABLED_ACKNOWLEDGED = strict_bool("SANDBOX_ENABLED_ACKNOWLEDGED", default=False)
# Set only by config.settings_test: the one settings module where fault injection may be on.
GIFTLINE_TEST_SETTINGS = False

INSTALLED_APPS = [
    "staff.admin_config.GiftlineAdminConfig",  # django.contrib.admin with the second-factor site
    "staff",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "django_q",
    "tenants",
    "integrations",
    "sync",
]

# The Virtuous sandbox: a fake Virtuous API served under /sandbox/virtuous/ for the demo, the
# end-to-end tests and the benchmarks. It accepts any request with a sandbox token, so it is off
# unless switched on explicitly.
SANDBOX_ENABLED = strict_bool("SANDBOX_ENABLED", default=False)
# The demo commands (`make run`) drive the sandbox, so they exist only beside it.
if SANDBOX_ENABLED:
    INSTALLED_APPS += ["integrations.sandbox", "demo"]

MIDDLEWARE = [
    # Health and metrics answer before the host check and the HTTPS redirect (probes use addresses).
    "config.middleware.OpsEndpointsMiddleware",
    "config.middleware.RequestContextMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

# Staff logins: a lockout after repeated failures (django-axes), counted per address and per user
# name (guesses spread over many addresses still stop), and a TOTP second factor (django-otp, staff/).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_LOCKOUT_MINUTES", default=30))
AXES_LOCKOUT_PARAMETERS = ["ip_address", "username"]
AXES_RESET_ON_SUCCESS = True
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", default="Giftline")
OTP_REQUIRED_GROUPS = env.list("OTP_REQUIRED_GROUPS", default=["Integration admin"])
# Superusers hold every permission the Integration admin group has; the local demo (DEBUG) spares them.
OTP_REQUIRED_FOR_SUPERUSERS = strict_bool("OTP_REQUIRED_FOR_SUPERUSERS", default=not DEBUG)

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# The capture path's two statements (integrations/common/rows.py) are prepared on PostgreSQL,
# once per connection. Off behind a pooler in transaction mode that cannot keep prepared
# statements (PgBouncer before 1.21).
DATABASE_PREPARED_STATEMENTS = strict_bool("DATABASE_PREPARED_STATEMENTS", default=True)
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The web server and the worker share one file: wait for locks instead of failing, take
    # the write lock at BEGIN (no upgrade deadlocks), and let readers run beside a writer.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 30,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
else:
    DATABASES["default"].setdefault("CONN_MAX_AGE", env.int("DB_CONN_MAX_AGE", default=60))
    # Off by default: a check is a round trip before every request's first query, while a
    # connection the database dropped costs one failed request (the sender retries a webhook;
    # the dispatcher reconnects on DatabaseError). Turn on where failovers are frequent.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = strict_bool("DB_CONN_HEALTH_CHECKS", default=False)
    if DATABASE_PREPARED_STATEMENTS:
        # Django turns psycopg's preparation off. Only server-binding cursors ever prepare, and
        # the capture path's are the only ones (Django's own bind on the client).
        DATABASES["default"].setdefault("OPTIONS", {}).setdefault("prepare_threshold", 0)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = env.str("REDIS_URL", default="")

# django-q2 only triggers and schedules drains; retry state lives in our own tables, so a
# failed task is never retried by the broker (max_attempts=1) and timeout < retry keeps a
# slow task from being handed to a second worker while it still runs.
Q_TASK_TIMEOUT = env.int("Q_TASK_TIMEOUT", default=300)
Q_CLUSTER = {
    "name": "giftline",
    # Dispatch tasks hold a worker for about a minute each (inbound + outbound), so keep room
    # beside them for polls, maintenance and alerts.
    "workers": env.int("Q_WORKERS", default=4),
    "timeout": Q_TASK_TIMEOUT,
    "retry": Q_TASK_TIMEOUT + 60,
    "max_attempts": 1,
    "ack_failures": True,
    "catch_up": False,
    "save_limit": 500,
    "label": "Task queue",
}
if REDIS_URL:
    Q_CLUSTER["redis"] = REDIS_URL
else:
    Q_CLUSTER["orm"] = "default"
    Q_CLUSTER["poll"] = 0.5
    # With the ORM broker django-q2 keeps cluster heartbeats in a Django cache; a per-process
    # memory cache would hide them from the web's readiness check, so use files on this machine.
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
        "qstats": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": env.str("Q_STATS_CACHE_DIR", default=str(BASE_DIR / "var" / "qstats")),
        },
    }
    Q_CLUSTER["cache"] = "qstats"
# Every cluster runs django-q2's scheduler unless this is off: the production profile runs one
# scheduler process and N worker processes with Q_SCHEDULER=false (see deploy/).
Q_CLUSTER["scheduler"] = strict_bool("Q_SCHEDULER", default=True)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="giftline@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL

# Production hardening; `manage.py check --deploy` passes with these when DEBUG is off.
SECURE_SSL_REDIRECT = strict_bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = not DEBUG
SECURE_HSTS_PRELOAD = strict_bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
SECURE_PROXY_SSL_HEADER = (
    ("HTTP_X_FORWARDED_PROTO", "https") if strict_bool("BEHIND_TLS_PROXY", default=False) else None
)
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.reporting.SecretSafeExceptionReporterFilter"

# --- Giftline ---------------------------------------------------------------------------
VIRTUOUS_BASE_URL = env.str("VIRTUOUS_BASE_URL", default="https://api.virtuoussoftware.com")
# The only hosts a tenant's virtuous_base_url may name: its API token is sent there. Entries are
# "host" or "host:port". The sandbox's hosts are added while SANDBOX_ENABLED (tenants/virtuous_hosts.py).
VIRTUOUS_ALLOWED_HOSTS = env.list(
    "VIRTUOUS_ALLOWED_HOSTS", default=[urlsplit(VIRTUOUS_BASE_URL).hostname or "api.virtuoussoftware.com"]
)
VIRTUOUS_SANDBOX_HOSTS = env.list("VIRTUOUS_SANDBOX_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
# Virtuous allows 5,000 requests/hour per organisation; the headroom keeps a safety margin
# for the customer's other integrations that share the same organisation budget.
VIRTUOUS_DEFAULT_HOURLY_BUDGET = env.int("VIRTUOUS_DEFAULT_HOURLY_BUDGET", default=5000)
VIRTUOUS_DEFAULT_BUDGET_HEADROOM_PERCENT = env.int("VIRTUOUS_DEFAULT_BUDGET_HEADROOM_PERCENT", default=10)
# Per-tenant Virtuous token buckets, shared by every worker: "database" (a row per tenant),
# "redis", or "auto" (Redis when REDIS_URL is set). Burst = how many seconds of the hourly budget
# may be spent at once.
RATE_LIMIT_BACKEND = env.str("RATE_LIMIT_BACKEND", default="auto").strip().lower()
if RATE_LIMIT_BACKEND not in ("auto", "database", "redis"):
    raise ImproperlyConfigured(f"RATE_LIMIT_BACKEND={RATE_LIMIT_BACKEND!r}; use auto, database or redis.")
RATE_LIMIT_REDIS_PREFIX = env.str("RATE_LIMIT_REDIS_PREFIX", default="giftline:ratelimit:")
VIRTUOUS_BUCKET_BURST_SECONDS = env.int("VIRTUOUS_BUCKET_BURST_SECONDS", default=60)
# For tenants that batch, calls within a tight Virtuous window are spread at the budget's pace,
# at most this many seconds of budget ahead of it (0: off; a window may then be spent in its first
# seconds and a busy tenant's later donations wait for the reset). integrations/common/ratelimit.py.
VIRTUOUS_WINDOW_SPREAD_SECONDS = env.float("VIRTUOUS_WINDOW_SPREAD_SECONDS", default=5.0)
# X-RateLimit-Reset and Retry-After come in whole seconds and from another clock: a tenant whose
# window is spent resumes this long after the announced reset, so its first call never lands in
# the old window (1.5 s of an hourly window is 0.04 % of the budget, and the bucket refills meanwhile).
VIRTUOUS_RATE_RESET_MARGIN_SECONDS = env.float("VIRTUOUS_RATE_RESET_MARGIN_SECONDS", default=1.5)
# Constant Contact limits each application key (all tenants together) to 4 requests/s and
# 10,000/day; one shared limiter spends these. The defaults sit below the limits because a token
# bucket can let its burst through on top of its rate (see integrations/constant_contact/throttle.py).
CONSTANT_CONTACT_REQUESTS_PER_SECOND = env.int("CONSTANT_CONTACT_REQUESTS_PER_SECOND", default=3)
CONSTANT_CONTACT_REQUESTS_PER_DAY = env.int("CONSTANT_CONTACT_REQUESTS_PER_DAY", default=9600)
# Where ``tenants`` learns which credential platforms exist (tenants knows no provider by name):
# a dotted path to a function returning {platform: label}, the integrations registry.
CREDENTIAL_PLATFORMS = "integrations.registry.credential_platforms"
# And where it learns whether a secret typed at a shell belongs to a connection (credential_set).
CREDENTIAL_SCOPE_CHECK = "integrations.selectors.credential_scope_check"
# And which connections a tenant has, so the console offers a secret's connection by name.
CREDENTIAL_SCOPES = "integrations.selectors.credential_scope_choices"
HTTP_USER_AGENT = env.str("HTTP_USER_AGENT", default="Giftline/0.1 (+https://github.com/giftline)")

# Webhook bodies above this are refused (413) and recorded; Stripe events are well under it.
WEBHOOK_MAX_BODY_BYTES = env.int("WEBHOOK_MAX_BODY_BYTES", default=1024 * 1024)
# Connections each web process remembers by webhook URL, so that a delivery is one statement: the
# INSERT itself checks that the remembered connection still matches (a rotated secret or a switched
# off connection is read again at once). 0: read the connection for every delivery.
WEBHOOK_CONNECTION_CACHE_SIZE = env.int("WEBHOOK_CONNECTION_CACHE_SIZE", default=1000)
# A rejected delivery (bad signature, wrong content type, oversized) keeps its metadata, the
# SHA-256 of its body and this many leading bytes, never the body; at most this many rejected rows
# per connection and minute are stored, the rest only counted (RejectedDeliveryCount).
REJECTED_BODY_PREFIX_BYTES = env.int("REJECTED_BODY_PREFIX_BYTES", default=256)
REJECTED_STORED_PER_CONNECTION_PER_MINUTE = env.int("REJECTED_STORED_PER_CONNECTION_PER_MINUTE", default=30)

# --- Retention (docs/decisions.md, issue 14) -------------------------------------------------
# The daily purge (schedule "data-purge", command data_purge) keeps: webhook bodies of handled
# events and rejected deliveries for RETENTION_WEBHOOK_BODY_DAYS, attempt rows of finished items
# for RETENTION_ATTEMPT_DAYS, resolved dead letters for RETENTION_DEAD_LETTER_DAYS. Each is
# overridable per tenant (Tenant.retention_*). The reconciliation log and the audit log are kept.
RETENTION_WEBHOOK_BODY_DAYS = env.int("RETENTION_WEBHOOK_BODY_DAYS", default=30)
RETENTION_ATTEMPT_DAYS = env.int("RETENTION_ATTEMPT_DAYS", default=30)
RETENTION_DEAD_LETTER_DAYS = env.int("RETENTION_DEAD_LETTER_DAYS", default=90)
# Rows per DELETE/UPDATE, and batches per kind and tenant in one run (the rest waits for the next).
PURGE_BATCH_SIZE = env.int("PURGE_BATCH_SIZE", default=1000)
PURGE_MAX_BATCHES = env.int("PURGE_MAX_BATCHES", default=200)
for _name in (
    "REJECTED_BODY_PREFIX_BYTES",
    "RETENTION_WEBHOOK_BODY_DAYS",
    "RETENTION_ATTEMPT_DAYS",
    "RETENTION_DEAD_LETTER_DAYS",
    "PURGE_BATCH_SIZE",
    "PURGE_MAX_BATCHES",
):
    if globals()[_name] < 1:
        raise ImproperlyConfigured(f"{_name}={globals()[_name]} must be at least 1.")
if REJECTED_STORED_PER_CONNECTION_PER_MINUTE < 0:
    raise ImproperlyConfigured("REJECTED_STORED_PER_CONNECTION_PER_MINUTE must be 0 or more.")

# Public base URL used to show each connection's webhook URL (admin, connection_create).
PUBLIC_BASE_URL = env.str("PUBLIC_BASE_URL", default="http://127.0.0.1:8000")

# --- Outbound queue and submitter (see docs/decisions.md) ---------------------------------
# Dispatch tasks run every minute (one schedule each) and drain due tenants for about a minute,
# OUTBOUND_DRAIN_THREADS tenants at a time per dispatch; add dispatchers and qcluster workers to
# scale out. A tenant is drained for at most one slice before others get their turn.
OUTBOUND_DISPATCHERS = env.int("OUTBOUND_DISPATCHERS", default=1)
OUTBOUND_DISPATCH_SECONDS = env.float("OUTBOUND_DISPATCH_SECONDS", default=55.0)
OUTBOUND_DRAIN_THREADS = env.int("OUTBOUND_DRAIN_THREADS", default=32)
OUTBOUND_DRAIN_SLICE_SECONDS = env.float("OUTBOUND_DRAIN_SLICE_SECONDS", default=15.0)
# Calls one tenant may have in flight at once (independent batches, each its own claim; the
# token bucket still paces them). 3 keeps a tenant's budget busy at ~1 s Virtuous answers.
OUTBOUND_TENANT_IN_FLIGHT = env.int("OUTBOUND_TENANT_IN_FLIGHT", default=3)
# A tenant whose queue had nothing due until live work came in is claimed before tenants with
# backlogs for this many seconds of its streak, so a new donation does not wait a round of them.
OUTBOUND_FRESH_SECONDS = env.float("OUTBOUND_FRESH_SECONDS", default=30.0)
# Item and tenant leases are short and renewed by the drain's heartbeat (sync/outbound/leases.py):
# a dead worker's items and tenant come back within one lease, a live one keeps them.
OUTBOUND_LEASE_SECONDS = env.int("OUTBOUND_LEASE_SECONDS", default=30)
OUTBOUND_HEARTBEAT_SECONDS = env.float("OUTBOUND_HEARTBEAT_SECONDS", default=OUTBOUND_LEASE_SECONDS / 3)
if not 0 < OUTBOUND_HEARTBEAT_SECONDS <= OUTBOUND_LEASE_SECONDS / 2:
    raise ImproperlyConfigured("OUTBOUND_HEARTBEAT_SECONDS must be positive and at most half the lease.")
OUTBOUND_MAX_BUDGET_WAIT_SECONDS = env.float("OUTBOUND_MAX_BUDGET_WAIT_SECONDS", default=5.0)
# A due tenant left waiting this long for a thread makes the dispatcher "contended": running
# drains then stop sleeping for budget and end their turn (below), and no sibling drain starts.
OUTBOUND_CONTENDED_AFTER_SECONDS = env.float("OUTBOUND_CONTENDED_AFTER_SECONDS", default=3.0)
# ...and a drain that has held its thread this long then ends after its current call (a turn).
OUTBOUND_YIELD_AFTER_SECONDS = env.float("OUTBOUND_YIELD_AFTER_SECONDS", default=2.0)
OUTBOUND_UNBATCHED_CLAIM = env.int("OUTBOUND_UNBATCHED_CLAIM", default=10)
OUTBOUND_DEFER_SECONDS = env.int("OUTBOUND_DEFER_SECONDS", default=3600)
OUTBOUND_DEFER_MAX_HOURS = env.int("OUTBOUND_DEFER_MAX_HOURS", default=96)
OUTBOUND_CONFIRM_LOOKUP_HOURS = env.int("OUTBOUND_CONFIRM_LOOKUP_HOURS", default=24)
OUTBOUND_NEEDS_REVIEW_HOURS = env.int("OUTBOUND_NEEDS_REVIEW_HOURS", default=72)
# A write waiting on another (a new donor's gift on its Contact Transaction) goes to needs_review
# after this long: longer than a contact's own 72 h review, so the contact's fate decides first.
OUTBOUND_DEPENDENCY_WAIT_HOURS = env.int("OUTBOUND_DEPENDENCY_WAIT_HOURS", default=96)
OUTBOUND_STALE_SECONDS = env.int("OUTBOUND_STALE_SECONDS", default=3600)
INBOUND_DISPATCH_SECONDS = env.float("INBOUND_DISPATCH_SECONDS", default=55.0)
INBOUND_MAX_ATTEMPTS = env.int("INBOUND_MAX_ATTEMPTS", default=5)
POLL_FAILURES_BEFORE_PAUSE = env.int("POLL_FAILURES_BEFORE_PAUSE", default=3)
POLL_PAUSE_HOURS = env.int("POLL_PAUSE_HOURS", default=24)
ALERT_QUIET_SECONDS = env.int("ALERT_QUIET_SECONDS", default=3600)
GIFTLINE_ALERT_FALLBACK_EMAILS = env.list("GIFTLINE_ALERT_FALLBACK_EMAILS", default=[])
# Historical-import files uploaded in the console wait here (outside any web root) until their gifts
# are queued, then are deleted; larger uploads are refused.
IMPORT_SPOOL_DIR = Path(env.str("IMPORT_SPOOL_DIR", default=str(BASE_DIR / "var" / "imports")))
IMPORT_UPLOAD_MAX_BYTES = env.int("IMPORT_UPLOAD_MAX_BYTES", default=50 * 1024 * 1024)

# --- Running in production: logs, metrics, health, error reports (docs/metrics.md) -----------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="kv").strip().lower()
if LOG_FORMAT not in ("kv", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}; use kv or json.")
LOGGING = logging_config(
    level=LOG_LEVEL, log_format=LOG_FORMAT, q_level=env.str("Q_LOG_LEVEL", default="WARNING")
)

# /metrics (Prometheus text format) answers a bearer token or an address in the allow-list, never
# anyone else. PROMETHEUS_MULTIPROC_DIR (read by prometheus-client itself) makes it add up every
# gunicorn worker and qcluster process on the machine.
METRICS_PATH = "/" + env.str("METRICS_PATH", default="/metrics").strip("/")
METRICS_TOKEN = secret("METRICS_TOKEN") or ""
try:
    METRICS_ALLOWED_NETWORKS = [
        ipaddress.ip_network(n.strip(), strict=False)
        for n in env.list("METRICS_ALLOWED_NETWORKS", default=[])
    ]
except ValueError as exc:
    raise ImproperlyConfigured(f"METRICS_ALLOWED_NETWORKS: {exc}") from exc
METRICS_DATABASE_CACHE_SECONDS = env.float("METRICS_DATABASE_CACHE_SECONDS", default=10.0)
HEALTH_CHECK_TIMEOUT_SECONDS = env.float("HEALTH_CHECK_TIMEOUT_SECONDS", default=2.0)
HEALTH_SCHEDULER_STALE_SECONDS = env.int("HEALTH_SCHEDULER_STALE_SECONDS", default=180)
HEALTH_CLUSTER_STALE_SECONDS = env.int("HEALTH_CLUSTER_STALE_SECONDS", default=30)

SENTRY_DSN = secret("SENTRY_DSN") or ""
if SENTRY_DSN:
    sentry_init(
        dsn=SENTRY_DSN,
        environment=env.str("SENTRY_ENVIRONMENT", default="production"),
        release=env.str("SENTRY_RELEASE", default=""),
        traces_sample_rate=env.float("SENTRY_TRACES_SAMPLE_RATE", default=0.0),
    )
