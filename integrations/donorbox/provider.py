from integrations.common.connection_settings import Email, Int, SettingsSchema, Url, tolerance_setting
from integrations.donorbox import mapping, poller, webhooks
from integrations.registry import ProviderSpec

PROVIDER = ProviderSpec(
    key="donorbox",
    label="Donorbox",
    credential_platform="donorbox",
    default_source_name="Donorbox",
    content_types=("application/json",),
    verify=webhooks.verify,
    parse=webhooks.parse,
    load=webhooks.load,
    handlers=mapping.HANDLERS,
    capture_modes=("webhook", "polling", "hybrid"),
    poll=poller.poll,
    settings_fields=("account_email",),
    settings_schema=SettingsSchema(
        (
            tolerance_setting(webhooks.DEFAULT_TOLERANCE_SECONDS),
            Email(
                "account_email", help="The Donorbox account's login e-mail (the API's user name; polling)."
            ),
            Url("base_url", help="Donorbox API base URL.", default="https://donorbox.org"),
            Int("rescan_days", help="Days each poll re-reads before its checkpoint.", default=7, maximum=30),
            Int(
                "initial_days", help="How far back the first poll reads.", default=30, minimum=1, maximum=365
            ),
        )
    ),
    secret_purposes=("webhook_secret", "api_token"),
    poll_secret_purposes=("api_token",),
    project_key_help=(
        "The Donorbox campaign id (a number, in the campaign's URL) or, failing that, the donation's designation as Donorbox shows it."
    ),
    setup_steps=(
        "In Donorbox: Integrations → API & Zapier Integration → Custom Webhooks → add endpoint. Paste the webhook "
        "URL, choose payload version v2, select donation and plan events, save, then copy the endpoint's "
        "Signature Secret and store it with: manage.py credential_set TENANT donorbox webhook_secret --scope "
        "CONNECTION_ID. For polling, put the account e-mail in the connection settings and store the API key as "
        "donorbox api_token with the same scope."
    ),
)
