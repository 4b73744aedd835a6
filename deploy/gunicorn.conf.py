"""gunicorn configuration of the production profile: `gunicorn -c deploy/gunicorn.conf.py config.wsgi`.

Every value can be changed from the environment (GUNICORN_*), so the same file serves every host.
Logs (gunicorn's errors and its access log) go through the project's one logging setup
(config/logconfig.py): JSON with LOG_FORMAT=json, URL-path secrets masked.
"""

import multiprocessing
import os

from prometheus_client import multiprocess

from config.logconfig import logging_config

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", str(multiprocessing.cpu_count() * 2 + 1)))
threads = int(os.environ.get("GUNICORN_THREADS", "1"))
# Webhook requests only verify and store, so a request that takes this long is stuck.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# Recycle workers now and then so a slow leak never becomes an outage (jitter avoids a stampede).
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "5000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "500"))
# Only the TLS-terminating proxy in front may set X-Forwarded-* (pair with BEHIND_TLS_PROXY=true).
forwarded_allow_ips = os.environ.get("GUNICORN_FORWARDED_ALLOW_IPS", "127.0.0.1,::1")
accesslog = (
    "-" if os.environ.get("GUNICORN_ACCESS_LOG", "true").lower() in ("1", "true", "yes", "on") else None
)
access_log_format = '%(h)s "%(r)s" %(s)s %(b)s %(M)sms request_id=%({x-request-id}o)s'
logconfig_dict = logging_config(
    level=os.environ.get("LOG_LEVEL", "INFO"),
    log_format=os.environ.get("LOG_FORMAT", "kv").strip().lower(),
    gunicorn=True,
)
wsgi_app = "config.wsgi:application"


def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if directory:
        os.makedirs(directory, exist_ok=True)


def child_exit(server, worker):
    # A dead worker's "live" gauges (calls in flight) must not count any more; its counters stay.
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
