"""Plain types shared by providers and the sync room (integrations may not import sync).

A provider's mapping turns a source event into ``OutboundRequest``s; the sync room enqueues them.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models


class Operation(models.TextChoices):
    CONTACT_TRANSACTION = "contact_transaction", "Contact transaction"
    GIFT_TRANSACTION = "gift_transaction", "Gift transaction"
    RECURRING_GIFT_CREATE = "recurring_gift_create", "Recurring gift create"
    RECURRING_GIFT_CANCEL = "recurring_gift_cancel", "Recurring gift cancel"
    REVERSING_TRANSACTION = "reversing_transaction", "Reversing transaction"
    # Two-way sync: a Virtuous change written back to a partner platform (not to Virtuous).
    PARTNER_CONTACT_UPDATE = "partner_contact_update", "Partner contact update (two-way)"


PARTNER_OPERATIONS = frozenset({Operation.PARTNER_CONTACT_UPDATE})

# Whether sending the same write twice leaves one record (spec 4.11): Transactions dedupe on their
# transaction or reference pair, a cancel changes nothing the second time. Direct creates do not
# (spec 4.7): after an unknown outcome the submitter looks the record up before sending again.
# Every operation is listed; a new one must be classified here before the submitter accepts it.
IDEMPOTENT: dict[str, bool] = {
    Operation.CONTACT_TRANSACTION: True,
    Operation.GIFT_TRANSACTION: True,
    Operation.RECURRING_GIFT_CANCEL: True,
    Operation.PARTNER_CONTACT_UPDATE: True,
    Operation.REVERSING_TRANSACTION: False,
    Operation.RECURRING_GIFT_CREATE: False,
}


def operation_is_idempotent(operation: str) -> bool:
    """True when resending ``operation`` cannot double a record; KeyError for an unclassified one."""
    return IDEMPOTENT[operation]


@dataclass(frozen=True)
class OutboundRequest:
    """One Virtuous write, with the ids that make it idempotent."""

    operation: str
    external_source: str
    external_id: str
    payload: dict[str, Any]
    idempotency_key: str = ""
    partner_modified_at: datetime | None = None

    @property
    def key(self) -> str:
        """The queue's idempotency key. A gift happens once, so its key is its id; a contact changes
        over time, so its key also carries the content's fingerprint: the same state captured twice
        (webhook and poll, a retry) is one item, a real change is a new one."""
        if self.idempotency_key:
            return self.idempotency_key
        base = f"{self.operation}:{self.external_source}:{self.external_id}"
        if self.operation == Operation.CONTACT_TRANSACTION:
            return f"{base}:{payload_fingerprint(self.payload)[:20]}"
        return base


def payload_fingerprint(payload: dict[str, Any]) -> str:
    """A stable hash of a payload (key order and Decimal form do not matter)."""
    canonical = json.dumps(payload, sort_keys=True, cls=DjangoJSONEncoder, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


@dataclass(frozen=True)
class Outcome:
    """What processing one source event produced: writes to queue, or a reason a person must look."""

    requests: list[OutboundRequest] = field(default_factory=list)
    review_reason: str = ""
    note: str = ""


class MalformedPayload(ValueError):
    """The body cannot be understood; the event is kept for inspection, nothing is enqueued."""


class MappingError(ValueError):
    """The event is well-formed but cannot be mapped (e.g. an unmapped project code)."""


@dataclass(frozen=True)
class WebhookRequest:
    """What a receive view hands a provider: the raw bytes and the headers, nothing parsed yet."""

    # Not in the repr: headers, query and path may carry signatures and secrets, and a repr ends
    # up in logs and exception pages.
    body: bytes = field(repr=False)
    headers: dict[str, str] = field(repr=False)
    content_type: str
    query: dict[str, str] = field(repr=False)
    path_secret: str = field(default="", repr=False)


@dataclass(frozen=True)
class ParsedEvent:
    """The minimum a receive view needs to store and dedupe an event."""

    event_type: str
    dedupe_key: str
    occurred_at: datetime | None = None


@dataclass(frozen=True)
class PolledRecord:
    """One change read by a poller, stored as an InboundEvent like a webhook delivery."""

    event_type: str
    dedupe_key: str
    payload: dict[str, Any]
    modified_at: datetime
    record_id: str
