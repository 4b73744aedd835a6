from integrations.common.connection_settings import Int, SettingsSchema, Text, tolerance_setting
from integrations.registry import ProviderSpec
from integrations.stripe import mapping, poller, webhooks

PROVIDER = ProviderSpec(
    key="stripe",
    label="Stripe",
    credential_platform="stripe",
    default_source_name="Stripe",
    content_types=("application/json",),
    verify=webhooks.verify,
    parse=webhooks.parse,
    load=webhooks.load,
    handlers=mapping.HANDLERS,
    capture_modes=("webhook", "polling", "hybrid"),
    secret_purposes=("webhook_secret", "api_token"),
    poll_secret_purposes=("api_token",),
    poll=poller.poll,
    settings_schema=SettingsSchema(
        (
            tolerance_setting(webhooks.DEFAULT_TOLERANCE_SECONDS),
            Text(
                "campaign_metadata_key",
                help="Metadata key on the charge or subscription naming the campaign (project map key).",
                default="campaign",
                max_length=40,
            ),
            Int("max_network_retries", help="Stripe library retries per polling call.", default=2, maximum=5),
            Int(
                "charges_initial_days",
                help="How far back the first poll of charges reads.",
                default=30,
                minimum=1,
                maximum=365,
            ),
        )
    ),
    project_key_help=(
        'The value of the payment\'s campaign metadata (key "campaign" unless the campaign_metadata_key setting says otherwise). A payment with virtuous_project_code in its metadata needs no row.'
    ),
    setup_steps=(
        "In the Stripe Dashboard: Developers → Webhooks → Add endpoint. Paste the webhook URL, pin the API "
        "version, and select the events " + ", ".join(mapping.HANDLERS) + ". Reveal the endpoint's signing "
        "secret (whsec_...) and store it with: manage.py credential_set TENANT stripe webhook_secret --scope "
        "CONNECTION_ID. When rolling the secret, store the new one with --pending until Stripe stops signing "
        "with the old one. For the polling backstop, create a restricted key with read access to Events and "
        "Charges and store it as stripe api_token with the same scope."
    ),
)
