from integrations.auction import mapping, webhooks
from integrations.common.connection_settings import Choice, Int, Map, SettingsSchema, Text, tolerance_setting
from integrations.registry import ProviderSpec

PROVIDER = ProviderSpec(
    key="auction",
    label="Auction/event platform",
    credential_platform="auction",
    default_source_name="Auction",
    content_types=("application/json",),
    verify=webhooks.verify,
    parse=webhooks.parse,
    load=webhooks.load,
    handlers=mapping.HANDLERS,
    settings_schema=SettingsSchema(
        (
            Text(
                "signature_header",
                help="Header carrying the signature.",
                default=webhooks.DEFAULTS["signature_header"],
                max_length=64,
                pattern=webhooks.HEADER_NAME,
                pattern_help="must be an HTTP header name (letters, digits, '-')",
            ),
            Choice(
                "signature_algorithm",
                help="HMAC digest.",
                default="sha256",
                choices=tuple(webhooks.ALGORITHMS),
            ),
            Choice("signature_encoding", help="Digest encoding.", default="hex", choices=webhooks.ENCODINGS),
            Text("signature_prefix", help="Text before the digest, e.g. 'sha256='.", max_length=20),
            Text(
                "timestamp_header",
                help="If set, the signed text is '<timestamp>.<body>' and the timestamp is checked.",
                max_length=64,
                pattern=webhooks.HEADER_NAME,
                pattern_help="must be an HTTP header name (letters, digits, '-')",
            ),
            tolerance_setting(webhooks.DEFAULTS["tolerance_seconds"]),
            Map(
                "premium_map",
                help="Item code or line type → Virtuous premium id.",
                values=Int("premium id", minimum=1),
            ),
            Text(
                "raffle_project_code",
                help="Project for raffle tickets (else they are skipped).",
                max_length=64,
            ),
            Text(
                "non_cash_gift_type",
                help="Gift type for donated items.",
                default=mapping.DEFAULT_NON_CASH_TYPE,
                max_length=50,
            ),
        )
    ),
    project_key_help=(
        "The event id, or event id:line type (e.g. 1234:ticket) to send one kind of line to its own project."
    ),
    setup_steps=(
        "Point the platform (or its relay) at the webhook URL, sending the order payload described in the "
        "README (Auction/event platforms). Agree a signing secret and store it with: manage.py credential_set "
        "TENANT auction webhook_secret --scope CONNECTION_ID. Set the signature scheme in the connection "
        "settings if it differs from the default (X-Signature, HMAC-SHA256, hex), map each event id to a "
        "Virtuous project code, and map item codes or line types to Virtuous premium ids in premium_map."
    ),
)
