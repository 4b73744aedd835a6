import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config import env as env_module

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "word,expected", [("true", True), ("Yes", True), ("1", True), ("off", False), ("FALSE", False)]
)
def test_strict_bool_accepts_the_usual_words(monkeypatch, word, expected):
    monkeypatch.setenv("GL_FLAG", word)
    assert env_module.strict_bool("GL_FLAG", default=not expected) is expected


def test_strict_bool_typo_is_an_error_not_false(monkeypatch):
    monkeypatch.setenv("GL_FLAG", "ture")
    with pytest.raises(ImproperlyConfigured, match=r"GL_FLAG='ture' is not a boolean"):
        env_module.strict_bool("GL_FLAG", default=False)


def test_strict_bool_unset_uses_default(monkeypatch):
    monkeypatch.delenv("GL_FLAG", raising=False)
    assert env_module.strict_bool("GL_FLAG", default=True) is True


def test_secret_from_file(monkeypatch, tmp_path):
    f = tmp_path / "key"
    f.write_text("from-a-file\n")
    monkeypatch.delenv("GL_SECRET", raising=False)
    monkeypatch.setenv("GL_SECRET_FILE", str(f))
    assert env_module.secret("GL_SECRET") == "from-a-file"


def test_secret_and_secret_file_together_is_an_error(monkeypatch, tmp_path):
    monkeypatch.setenv("GL_SECRET", "x")
    monkeypatch.setenv("GL_SECRET_FILE", str(tmp_path / "key"))
    with pytest.raises(ImproperlyConfigured, match="not both"):
        env_module.secret("GL_SECRET")


def test_missing_secret_file_is_an_error(monkeypatch, tmp_path):
    monkeypatch.delenv("GL_SECRET", raising=False)
    monkeypatch.setenv("GL_SECRET_FILE", str(tmp_path / "missing"))
    with pytest.raises(ImproperlyConfigured, match="cannot be read"):
        env_module.secret("GL_SECRET")


def _manage(*args: str, **extra_env: str) -> subprocess.CompletedProcess:
    # Start from the real environment minus what the test settings injected.
    injected = (
        "DJANGO_",
        "DEBUG",
        "SECRET_KEY",
        "CREDENTIAL_KEYS",
        "ALLOWED_HOSTS",
        "SECURE_",
        "ALLOW_PRIVATE",
        "SANDBOX_",
        "GIFTLINE_FAULT_POINT",
        "VIRTUOUS_",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(injected)}
    env.update({"GIFTLINE_ENV_FILE": "/nonexistent", "DJANGO_SETTINGS_MODULE": "config.settings"})
    env.update(extra_env)
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )


def test_typo_in_debug_stops_startup_with_a_clear_message():
    result = _manage("check", DEBUG="ture")
    assert result.returncode != 0
    assert "DEBUG='ture' is not a boolean" in result.stderr


def test_production_settings_refuse_missing_secrets():
    result = _manage("check", DEBUG="false", SECRET_KEY="", CREDENTIAL_KEYS="", ALLOWED_HOSTS="")
    assert result.returncode != 0
    for check_id in ("giftline.E001", "giftline.E002", "giftline.E003"):
        assert check_id in result.stderr


def test_production_settings_pass_check_deploy():
    from cryptography.fernet import Fernet

    result = _manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        DEBUG="false",
        SECRET_KEY="p" * 30 + "-a-long-random-production-secret-key-value",
        CREDENTIAL_KEYS=Fernet.generate_key().decode(),
        ALLOWED_HOSTS="giftline.example.org",
    )
    assert result.returncode == 0, result.stderr
