import pytest
from cryptography.fernet import Fernet
from django.db import connection

from tenants import crypto, selectors, services
from tenants.models import AuditEvent, Credential
from tests.conftest import VIRTUOUS_TOKEN


def _raw_ciphertexts() -> list[str]:
    with connection.cursor() as cur:
        cur.execute("SELECT ciphertext, last4 FROM tenants_credential")
        return [" ".join(row) for row in cur.fetchall()]


def test_raw_column_never_contains_the_secret(tenant):
    # then: neither the whole secret nor a large piece of it is in any raw column
    raw = " ".join(_raw_ciphertexts())
    assert VIRTUOUS_TOKEN not in raw
    assert VIRTUOUS_TOKEN[:-4] not in raw
    # and the value still decrypts through the selector
    assert (
        selectors.credential_secret(tenant=tenant, platform="virtuous", purpose="api_token") == VIRTUOUS_TOKEN
    )


def test_setting_a_new_active_secret_retires_the_old_one(tenant):
    # when
    services.credential_set(tenant=tenant, platform="virtuous", purpose="api_token", secret="new-token-0001")
    # then
    states = sorted(Credential.objects.filter(tenant=tenant).values_list("state", "last4"))
    assert states == [("active", "0001"), ("retired", "1234")]
    assert (
        selectors.credential_secret(tenant=tenant, platform="virtuous", purpose="api_token")
        == "new-token-0001"
    )


def test_pending_secret_is_accepted_beside_the_active_one_until_activated(tenant):
    services.credential_set(tenant=tenant, platform="stripe", purpose="webhook_secret", secret="whsec_old")
    pending = services.credential_set(
        tenant=tenant, platform="stripe", purpose="webhook_secret", secret="whsec_new", activate=False
    )
    assert selectors.credential_secrets_for_verification(
        tenant=tenant, platform="stripe", purpose="webhook_secret"
    ) == ["whsec_old", "whsec_new"]
    # when
    services.credential_activate(credential=pending)
    # then
    assert selectors.credential_secrets_for_verification(
        tenant=tenant, platform="stripe", purpose="webhook_secret"
    ) == ["whsec_new"]


def test_every_credential_change_is_audited_without_the_value(tenant):
    cred = services.credential_set(
        tenant=tenant, platform="stripe", purpose="api_token", secret="sk_test_abcdef987654"
    )
    services.credential_retire(credential=cred)
    events = AuditEvent.objects.filter(tenant=tenant, action__startswith="credential.")
    assert [e.action for e in events.order_by("id")] == [
        "credential.set",
        "credential.set",
        "credential.retired",
    ]
    for event in events:
        assert "sk_test_abcdef987654" not in str(event.details)


def test_empty_or_unknown_inputs_are_refused(tenant):
    with pytest.raises(ValueError, match="empty"):
        services.credential_set(tenant=tenant, platform="stripe", purpose="api_token", secret="   ")
    with pytest.raises(ValueError, match="Unknown platform"):
        services.credential_set(tenant=tenant, platform="paypal", purpose="api_token", secret="x")
    assert not Credential.objects.filter(tenant=tenant, platform__in=["stripe", "paypal"]).exists()


def test_key_rotation_reencrypts_and_old_keys_still_decrypt_meanwhile(tenant, settings):
    old_key = settings.CREDENTIAL_KEYS[0]
    new_key = Fernet.generate_key().decode()
    before = Credential.objects.get(tenant=tenant, state="active").ciphertext

    # given: the new key is added first; old rows still decrypt during the rotation
    settings.CREDENTIAL_KEYS = [new_key, old_key]
    assert (
        selectors.credential_secret(tenant=tenant, platform="virtuous", purpose="api_token") == VIRTUOUS_TOKEN
    )

    # when
    count = services.credentials_rotate_key()

    # then: every row changed and is readable with the new key alone
    assert count == Credential.objects.count()
    after = Credential.objects.get(tenant=tenant, state="active").ciphertext
    assert after != before
    assert Fernet(new_key.encode()).decrypt(after.encode()).decode() == VIRTUOUS_TOKEN
    settings.CREDENTIAL_KEYS = [new_key]
    assert (
        selectors.credential_secret(tenant=tenant, platform="virtuous", purpose="api_token") == VIRTUOUS_TOKEN
    )
    assert AuditEvent.objects.filter(action="credentials.key_rotated", details__count=count).exists()


def test_dropping_the_old_key_before_rotation_fails_loudly(tenant, settings):
    settings.CREDENTIAL_KEYS = [Fernet.generate_key().decode()]
    with pytest.raises(crypto.CredentialDecryptError):
        selectors.credential_secret(tenant=tenant, platform="virtuous", purpose="api_token")


def test_credential_repr_and_str_never_show_the_value(tenant):
    cred = Credential.objects.get(tenant=tenant, state="active")
    assert VIRTUOUS_TOKEN not in repr(cred)
    assert VIRTUOUS_TOKEN not in str(cred)
    assert cred.ciphertext not in repr(cred)
