from integrations.auction import mapping, webhooks
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
    setup_steps=(
        "Point the platform (or its relay) at the webhook URL, sending the order payload described in the "
        "README (Auction/event platforms). Agree a signing secret and store it with: manage.py credential_set "
        "TENANT auction webhook_secret --scope CONNECTION_ID. Set the signature scheme in the connection "
        "settings if it differs from the default (X-Signature, HMAC-SHA256, hex), map each event id to a "
        "Virtuous project code, and map item codes or line types to Virtuous premium ids in premium_map."
    ),
)
