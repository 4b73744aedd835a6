"""With DEBUG off, the switches that open the platform up need an acknowledgement, and fault injection is refused."""

import pytest
from cryptography.fernet import Fernet

from tests.config.test_env import _manage

PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "p" * 30 + "-a-long-random-production-secret-key-value",
    "CREDENTIAL_KEYS": Fernet.generate_key().decode(),
    "ALLOWED_HOSTS": "giftline.example.org",
}


@pytest.mark.parametrize(
    ("env", "check_id"),
    [
        ({"SANDBOX_ENABLED": "true"}, "giftline.E004"),
        ({"ALLOW_PRIVATE_NETWORK_URLS": "true"}, "giftline.E005"),
        ({"GIFTLINE_FAULT_POINT": "after_send"}, "giftline.E006"),
        # An acknowledgement opens the first two; nothing opens fault injection.
        ({"GIFTLINE_FAULT_POINT": "after_send", "SANDBOX_ENABLED_ACKNOWLEDGED": "true"}, "giftline.E006"),
    ],
)
def test_dangerous_switches_stop_a_production_start(env, check_id):
    result = _manage("check", **PRODUCTION, **env)
    assert result.returncode != 0 and check_id in result.stderr


@pytest.mark.parametrize(
    "env",
    [
        {"SANDBOX_ENABLED": "true", "SANDBOX_ENABLED_ACKNOWLEDGED": "true"},
        {"ALLOW_PRIVATE_NETWORK_URLS": "true", "ALLOW_PRIVATE_NETWORK_URLS_ACKNOWLEDGED": "true"},
        {"DEBUG": "true", "SANDBOX_ENABLED": "true", "ALLOW_PRIVATE_NETWORK_URLS": "true"},
    ],
)
def test_acknowledged_or_debug_starts(env):
    result = _manage("check", **{**PRODUCTION, **env})
    assert result.returncode == 0, result.stderr
