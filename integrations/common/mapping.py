"""What every mapper shares: the tenant and connection it maps for, and running one safely.

A mapper is pure: it gets a ``MappingContext`` and a loaded payload and returns an ``Outcome``.
"""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from integrations.types import MalformedPayload, MappingError, Operation, OutboundRequest, Outcome

# What a mapper or parser raises when a value is not what it expected (a missing key, a string
# where an object was, a date out of range, an amount that is not a number).
DATA_ERRORS = (KeyError, IndexError, TypeError, ValueError, ArithmeticError, AttributeError)


@dataclass(frozen=True)
class MappingContext:
    """Everything a mapper may know about the tenant and connection; mapping stays pure."""

    tenant_slug: str
    time_zone: str
    source_name: str
    default_project_code: str = ""
    project_code_map: Mapping[str, str] = field(default_factory=dict)
    settings: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_connection(cls, connection: Any) -> MappingContext:
        return cls(
            tenant_slug=connection.tenant.slug,
            time_zone=connection.tenant.virtuous_time_zone,
            source_name=connection.source_name,
            default_project_code=connection.default_project_code,
            project_code_map=dict(connection.project_code_map or {}),
            settings=dict(connection.settings or {}),
        )

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.time_zone)

    def local_date(self, moment: datetime) -> str:
        """The gift date Virtuous expects: the calendar day in the organisation's time zone."""
        return moment.astimezone(self.tz).date().isoformat()

    def reversal(self, gift_id: str, *, on: datetime, notes: str, key: str = "") -> OutboundRequest:
        """Reverse the gift we wrote as ``gift_id``. The submitter resolves its Virtuous id from our
        transaction ids, and waits while Virtuous does not hold the gift yet."""
        return OutboundRequest(
            Operation.REVERSING_TRANSACTION,
            self.source_name,
            key or f"{gift_id}-refund",
            {
                "reversedTransaction": {"transactionSource": self.source_name, "transactionId": gift_id},
                "giftDate": self.local_date(on),
                "notes": notes,
            },
        )

    def recurring_cancel(self, schedule_id: str, *, reason: str) -> OutboundRequest:
        """Cancel the recurring gift we created as ``schedule_id`` (resolved to its Virtuous id)."""
        return OutboundRequest(
            Operation.RECURRING_GIFT_CANCEL,
            self.source_name,
            f"{schedule_id}-cancel",
            {
                "recurringGiftTransaction": {
                    "transactionSource": self.source_name,
                    "transactionId": schedule_id,
                },
                "cancelReason": reason,
            },
        )

    def project_code(self, *keys: str | None) -> str:
        """Map the first known source key to a project code; unmapped is an error, never a guess."""
        for key in keys:
            if key is not None and str(key) in self.project_code_map:
                return self.project_code_map[str(key)]
        if self.default_project_code:
            return self.default_project_code
        shown = ", ".join(str(k) for k in keys if k) or "(none)"
        raise MappingError(
            f"No Virtuous project code is mapped for {shown} and the connection has no default."
        )


Handler = Callable[[MappingContext, dict[str, Any]], Outcome]


def event_map(handler: Handler, context: MappingContext, payload: Any) -> Any:
    """Run one mapper. A value it did not expect is a MalformedPayload with the reason, never a
    crash: the same bytes would fail the same way on every retry, so a person must look."""
    try:
        return handler(context, payload)
    except (MappingError, MalformedPayload):
        raise
    except DATA_ERRORS as exc:
        raise MalformedPayload(f"Cannot map this payload: {type(exc).__name__}: {exc}"[:500]) from exc
