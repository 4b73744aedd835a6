from integrations.gofundme_pro import mapping, poller, webhooks
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
    poll=poller.poll,
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
