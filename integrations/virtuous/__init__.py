"""Everything that talks to Virtuous CRM+: the client, its errors, the per-tenant rate budget,
tolerant parsing and inbound signature verification."""

from integrations.virtuous.client import CallRecord, VirtuousClient
from integrations.virtuous.errors import BudgetExhausted, ErrorClass, VirtuousError
from integrations.virtuous.ratelimit import TenantBudget
from integrations.virtuous.webhooks import sign, verify_delivery, verify_signature

__all__ = [
    "BudgetExhausted",
    "CallRecord",
    "ErrorClass",
    "TenantBudget",
    "VirtuousClient",
    "VirtuousError",
    "sign",
    "verify_delivery",
    "verify_signature",
]
