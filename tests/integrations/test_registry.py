"""The provider registry: partner sides, and the startup check of every registered provider."""

from integrations import registry
from integrations.checks import providers_check


def test_the_two_way_partners_are_found_through_the_registry():
    assert registry.partner_keys() == ["constant_contact", "mailchimp"]
    side = registry.partner_get("mailchimp")
    assert (side.member_tag_prefix, side.opt_out_prefix) == ("MC", "Mailchimp")
    assert registry.partner_get("stripe") is None and registry.partner_get("paypal") is None


def test_every_registered_provider_loads():
    assert providers_check(None) == []


def test_a_provider_that_does_not_load_fails_the_startup_check(monkeypatch):
    monkeypatch.setitem(registry.PROVIDERS, "broken", "integrations.broken.provider")
    registry.provider_get.cache_clear()
    try:
        assert [e.id for e in providers_check(None)] == ["giftline.E101"]
    finally:
        registry.provider_get.cache_clear()
