"""Every Virtuous path the platform calls, in one map (spec 4.9: keep paths in one place).

Templates use ``str.format`` names; the client URL-quotes each value. Query parameter names
and operators used by the incremental iterator live here too, because Virtuous spells them
per organisation and a rename should be a one-line change.
"""

from __future__ import annotations

from typing import NamedTuple


class Endpoint(NamedTuple):
    method: str
    path: str


ENDPOINTS: dict[str, Endpoint] = {
    "organization_current": Endpoint("GET", "/api/Organization/Current"),
    "contact_transaction": Endpoint("POST", "/api/Contact/Transaction"),
    "contact_batch": Endpoint("POST", "/api/Contact/Batch"),
    "contact_by_reference": Endpoint("GET", "/api/Contact/{reference_source}/{reference_id}"),
    "contact_find": Endpoint("GET", "/api/Contact/Find"),
    "contact_query": Endpoint("POST", "/api/Contact/Query"),
    "contact_query_full": Endpoint("POST", "/api/Contact/Query/FullContact"),
    "gift_transaction": Endpoint("POST", "/api/v2/Gift/Transaction"),
    "gift_transactions": Endpoint("POST", "/api/v2/Gift/Transactions"),
    "gift_by_transaction": Endpoint("GET", "/api/Gift/{transaction_source}/{transaction_id}"),
    "gift_query": Endpoint("POST", "/api/Gift/Query"),
    "gift_query_full": Endpoint("POST", "/api/Gift/Query/FullGift"),
    "gift_get": Endpoint("GET", "/api/Gift/{gift_id}"),
    "gift_by_contact": Endpoint("GET", "/api/Gift/ByContact/{contact_id}"),
    "gift_reversing_transaction": Endpoint("POST", "/api/Gift/ReversingTransaction"),
    "recurring_gift_create": Endpoint("POST", "/api/RecurringGift"),
    "recurring_gift_by_contact": Endpoint("GET", "/api/RecurringGift/ByContact/{contact_id}"),
    "recurring_gift_cancel": Endpoint("PUT", "/api/RecurringGift/Cancel/{recurring_gift_id}"),
    "webhook_create": Endpoint("POST", "/api/Webhook"),
    "webhook_get": Endpoint("GET", "/api/Webhook/{webhook_id}"),
    "webhook_update": Endpoint("PUT", "/api/Webhook/{webhook_id}"),
    "webhook_set_active": Endpoint("PUT", "/api/Webhook/{webhook_id}/Active"),
    "webhook_delete": Endpoint("DELETE", "/api/Webhook/{webhook_id}"),
}

MAX_TAKE = 1000

# Query vocabulary for incremental reads (spec 1.2 "Query request", 4.11 "Incremental reads").
QUERY_LAST_MODIFIED = "Last Modified Date"
QUERY_IS_AFTER = "Is After"
QUERY_GREATER_THAN = "Greater Than"
QUERY_SORT_BY_ID = "Id"
QUERY_ID_PARAMETER = {"contact": "Contact Id", "gift": "Gift Id"}
QUERY_ENDPOINT = {"contact": "contact_query_full", "gift": "gift_query_full"}
