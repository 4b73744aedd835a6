"""Settings for the benchmark servers: the platform's own, plus the two reference views."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "bench.urls"
