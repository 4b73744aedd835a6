from integrations.common.connection_settings import Int, SettingsSchema, Text, Url
from integrations.gofundme_pro import mapping, poller, webhooks
from integrations.gofundme_pro.client import BASE_URL, TOKEN_URL
from integrations.registry import ProviderSpec

PROVIDER = ProviderSpec(
    key="gofundme_pro",
    label="GoFundMe Pro (Classy)",
    credential_platform="gofundme_pro",
    default_source_name="GoFundMe Pro",
    content_types=("application/json",),
    verify=webhooks.verify,
    parse=webhooks.parse,
    load=webhooks.load,
    handlers=mapping.HANDLERS,
    capture_modes=("webhook", "polling", "hybrid"),
    secret_purposes=("webhook_secret", "oauth_client_secret"),
    poll_secret_purposes=("oauth_client_secret",),
    poll=poller.poll,
    settings_schema=SettingsSchema(
        (
            Text("client_id", help="API client id (Apps & Integrations → API).", max_length=100),
            Text(
                "organization_id",
                help="The GoFundMe Pro organization id.",
                max_length=20,
                pattern=r"\d+",
                pattern_help="must be the numeric organization id",
            ),
            Url("base_url", help="API base URL.", default=BASE_URL),
            Url("token_url", help="OAuth token URL.", default=TOKEN_URL),
            Int(
                "initial_days", help="How far back the first poll reads.", default=30, minimum=1, maximum=365
            ),
            Text(
                "transactions_with",
                help="'with' embeds for transactions.",
                default="supporter",
                max_length=200,
            ),
            Text(
                "recurring_donation_plans_with",
                help="'with' embeds for recurring donation plans.",
                default="supporter",
                max_length=200,
            ),
        )
    ),
    project_key_help=("The GoFundMe Pro (Classy) campaign id, a number in the campaign's URL."),
    setup_steps=(
        "In GoFundMe Pro: Apps & Integrations → Webhooks → Endpoints → Add Endpoint. Paste the webhook URL and "
        "subscribe to transaction.*, supporter.* and recurring_donation_plan.*; copy the endpoint's signing secret "
        "(whsec_…) and store it with: manage.py credential_set TENANT gofundme_pro webhook_secret --scope "
        "CONNECTION_ID (during a rotation add the new one as pending). Map each campaign id to a Virtuous project "
        "code in the connection's project map. For polling, create API credentials under Apps & Integrations → "
        "API, put client_id and organization_id in the connection settings and store the client secret as "
        "gofundme_pro oauth_client_secret with the same scope."
    ),
)
