from integrations.common.connection_settings import Choice, Int, Map, SettingsSchema, Text
from integrations.common.partners import PartnerSide
from integrations.mailchimp import mapping, partner, poller, webhooks
from integrations.registry import ProviderSpec

PROVIDER = ProviderSpec(
    key="mailchimp",
    label="Mailchimp",
    credential_platform="mailchimp",
    default_source_name="Mailchimp",
    content_types=webhooks.CONTENT_TYPES,
    verify=webhooks.verify,
    parse=webhooks.parse,
    load=webhooks.load,
    handlers=mapping.HANDLERS,
    capture_modes=("webhook", "polling", "hybrid"),
    secret_purposes=("webhook_secret", "api_token"),
    poll_secret_purposes=("api_token",),
    poll=poller.poll,
    handshake=webhooks.handshake,
    settings_schema=SettingsSchema(
        (
            Map(
                "audiences",
                help="Audience (list) id → name; the name becomes the tag 'Mailchimp: <name>'.",
                values=Text("audience name", max_length=100),
            ),
            Int(
                "overlap_seconds",
                help="Each poll re-reads this much before its checkpoint.",
                default=60,
                maximum=3600,
            ),
            Text(
                "opt_out_custom_field",
                help="Virtuous custom field set to the opt-out reason, if any.",
                max_length=100,
            ),
            Text(
                "two_way_list_id",
                help="Audience two-way writes go to (default: the first of audiences).",
                max_length=40,
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
        writer=partner.mailchimp_write,
        member_tag_prefix=mapping.MEMBER_TAG_PREFIX,
        opt_out_prefix=mapping.TAG_PREFIX,
    ),
    setup_steps=(
        "Generate a long random secret and store it with: manage.py credential_set TENANT mailchimp "
        "webhook_secret --scope CONNECTION_ID. In Mailchimp: Audience → Settings → Webhooks → Create, paste "
        "the webhook URL followed by the secret (/hooks/TOKEN/SECRET/), tick subscribes, unsubscribes, profile "
        "updates, cleaned addresses and e-mail changes, and UNTICK 'via the API' so our own writes do not echo "
        "back. Put {audience id: audience name} in the connection settings under 'audiences' (the name becomes "
        "the tag 'Mailchimp: <name>'). For polling, store the API key (ending in -usNN) as mailchimp "
        "api_token with the same scope."
    ),
)
