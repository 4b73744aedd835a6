"""What the fake Virtuous does: organisations, the holding state, the nightly batch, direct writes.

Transactions (``Contact/Transaction``, ``v2/Gift/Transaction(s)``)
only land in ``SandboxTransaction`` rows, one per organisation+kind+source+external id; the
nightly batch (:func:`sandbox_batch_run`) turns them into contacts and gifts and fires webhooks.
Direct writes (``POST/PUT /api/Contact``, ``Gift/ReversingTransaction``, ``RecurringGift``, the
"UI" helpers used by tests) change records at once and fire their webhook immediately; like
Virtuous (spec 4.7, 4.11) they are not idempotent: sending one twice makes two records. Webhooks are delivered after the database work committed.

The package splits that work by record (one module each); every caller (views, admin, commands,
tests) addresses the fake through this one surface.
"""

from integrations.sandbox.services.batch import (
    sandbox_batch_run,
    sandbox_needs_update_resolve,
)
from integrations.sandbox.services.contacts import (
    contact_by_email,
    contact_by_reference,
    contact_get,
    contact_resource,
    sandbox_contact_create,
    sandbox_contact_edit,
    sandbox_contacts_merge,
)
from integrations.sandbox.services.gifts import (
    gift_get,
    sandbox_gift_create,
)
from integrations.sandbox.services.holding import (
    Submission,
    contact_transaction_validate,
    gift_transaction_validate,
    sandbox_reversal_create,
    sandbox_transactions_submit,
)
from integrations.sandbox.services.orgs import (
    FAULT_FIELDS,
    sandbox_faults_reset,
    sandbox_faults_set,
    sandbox_org_authenticate,
    sandbox_org_create,
    sandbox_org_token_regenerate,
    sandbox_org_token_set,
    sandbox_storm_start,
    token_hash,
)
from integrations.sandbox.services.recurring import (
    recurring_get,
    sandbox_recurring_cancel,
    sandbox_recurring_create,
)
from integrations.sandbox.services.subscriptions import (
    sandbox_webhook_create,
    sandbox_webhook_delete,
    sandbox_webhook_get,
    sandbox_webhook_set_active,
    sandbox_webhook_update,
)

__all__ = [
    "FAULT_FIELDS",
    "Submission",
    "contact_by_email",
    "contact_by_reference",
    "contact_get",
    "contact_resource",
    "contact_transaction_validate",
    "gift_get",
    "gift_transaction_validate",
    "recurring_get",
    "sandbox_batch_run",
    "sandbox_needs_update_resolve",
    "sandbox_contact_create",
    "sandbox_contact_edit",
    "sandbox_contacts_merge",
    "sandbox_faults_reset",
    "sandbox_faults_set",
    "sandbox_gift_create",
    "sandbox_org_authenticate",
    "sandbox_org_create",
    "sandbox_org_token_regenerate",
    "sandbox_org_token_set",
    "sandbox_recurring_cancel",
    "sandbox_recurring_create",
    "sandbox_reversal_create",
    "sandbox_storm_start",
    "sandbox_transactions_submit",
    "sandbox_webhook_create",
    "sandbox_webhook_delete",
    "sandbox_webhook_get",
    "sandbox_webhook_set_active",
    "sandbox_webhook_update",
    "token_hash",
]
