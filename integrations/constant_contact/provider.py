from integrations.common.connection_settings import Choice, Int, Map, SettingsSchema, Text
from integrations.common.partners import PartnerSide
from integrations.constant_contact import mapping, partner, poller, webhooks
from integrations.registry import ProviderSpec

PROVIDER = ProviderSpec(
    key="constant_contact",
    label="Constant Contact",
    credential_platform="constant_contact",
    default_source_name="Constant Contact",
    content_types=("application/json",),
    verify=webhooks.verify,
    parse=webhooks.parse,
    load=webhooks.load,
    handlers=mapping.HANDLERS,
    capture_modes=("polling", "hybrid"),
    secret_purposes=("webhook_secret", "oauth_client_secret", "oauth_refresh_token"),
    poll_secret_purposes=("oauth_client_secret", "oauth_refresh_token"),
    webhook_secret_purposes=(),  # its webhooks are optional
    poll=poller.poll,
    handshake=webhooks.handshake,
    settings_schema=SettingsSchema(
        (
            Choice(
                "webhook_auth",
                help="How partner webhooks are authenticated (see webhooks.py).",
                default="path_secret",
                choices=webhooks.AUTH_MODES,
            ),
            Text("client_id", help="The application's OAuth client id.", max_length=100),
            Text(
                "account_id", help="The Constant Contact account id partner events must name.", max_length=100
            ),
            Int(
                "overlap_seconds",
                help="Each poll re-reads this much before its checkpoint.",
                default=60,
                maximum=3600,
            ),
            Map(
                "field_owners",
                help="Per-field ownership policy: shared field → virtuous or partner (default names owned by Virtuous).",
                keys=("firstName", "lastName", "optedOut", "tags"),
                values=Choice("owner", choices=("virtuous", "partner")),
            ),
        )
    ),
    partner=PartnerSide(
        writer=partner.constant_contact_write,
        member_tag_prefix=mapping.LIST_TAG_PREFIX,
        opt_out_prefix=mapping.TAG_PREFIX,
    ),
    setup_steps=(
        "Contacts are polled (Constant Contact has no contact webhooks). Authorise the account with scopes "
        "contact_data and offline_access, put the application's client_id (and the account_id) in the "
        "connection settings, then store with manage.py credential_set TENANT constant_contact ... --scope "
        "CONNECTION_ID: oauth_client_secret (the app secret) and oauth_refresh_token (from the authorisation). "
        "Access tokens are fetched and rotated automatically. Partner webhooks (account and billing topics) "
        "are optional: store a webhook_secret and register the URL followed by it (/hooks/TOKEN/SECRET/)."
    ),
)
