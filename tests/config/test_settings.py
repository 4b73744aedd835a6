import importlib

import pytest

import config.settings


@pytest.fixture
def reload_settings(monkeypatch):
    def _reload(**env):
        for key in ("DATABASE_URL", "REDIS_URL"):
            monkeypatch.delenv(key, raising=False)
        for key, value in env.items():
            monkeypatch.setenv(key, value)
        return importlib.reload(config.settings)

    yield _reload
    monkeypatch.undo()
    importlib.reload(config.settings)


def test_embedded_default_is_sqlite_and_orm_broker(reload_settings):
    s = reload_settings()
    assert s.DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert s.Q_CLUSTER["orm"] == "default" and "redis" not in s.Q_CLUSTER


def test_urls_switch_to_postgres_and_redis(reload_settings):
    s = reload_settings(DATABASE_URL="postgres://u@127.0.0.1:5432/x", REDIS_URL="redis://127.0.0.1:6379/0")
    assert s.DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql"
    assert s.Q_CLUSTER["redis"] == "redis://127.0.0.1:6379/0" and "orm" not in s.Q_CLUSTER


def test_queue_timeout_is_below_retry_and_attempts_are_explicit(reload_settings):
    s = reload_settings(Q_TASK_TIMEOUT="120")
    assert s.Q_CLUSTER["timeout"] < s.Q_CLUSTER["retry"]
    assert s.Q_CLUSTER["max_attempts"] == 1
