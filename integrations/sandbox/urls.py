"""Virtuous's paths, mounted at ``sandbox/virtuous/`` so a client's base URL is the only change.

Specific paths come before the two-segment lookups (``Contact/{source}/{id}``,
``Gift/{source}/{id}``) that would otherwise swallow them.
"""

from functools import partial

from django.urls import path

from integrations.sandbox import views as v
from integrations.sandbox.views import Handler as H
from integrations.sandbox.views import route

app_name = "sandbox"

urlpatterns = [
    path("api/Organization/Current", route(GET=H(v.organization_current)), name="organization-current"),
    path("api/Health", route(GET=H(v.health)), name="health"),
    path("api/Contact", route(POST=H(v.contact_create, write=True)), name="contact-create"),
    path(
        "api/Contact/Transaction",
        route(POST=H(v.contact_transaction, write=True)),
        name="contact-transaction",
    ),
    path("api/Contact/Batch", route(POST=H(v.contact_batch, write=True)), name="contact-batch"),
    path("api/Contact/Find", route(GET=H(v.contact_find)), name="contact-find"),
    path("api/Contact/Query", route(POST=H(v.contact_query)), name="contact-query"),
    path(
        "api/Contact/Query/FullContact",
        route(POST=H(partial(v.contact_query, full=True))),
        name="contact-query-full",
    ),
    path(
        "api/Contact/<int:contact_id>",
        route(GET=H(v.contact_detail), PUT=H(v.contact_update, write=True)),
        name="contact-detail",
    ),
    path(
        "api/Contact/<str:reference_source>/<str:reference_id>",
        route(GET=H(v.contact_by_reference)),
        name="contact-by-reference",
    ),
    path("api/v2/Gift/Transaction", route(POST=H(v.gift_transaction, write=True)), name="gift-transaction"),
    path(
        "api/v2/Gift/Transactions", route(POST=H(v.gift_transactions, write=True)), name="gift-transactions"
    ),
    path("api/Gift/Query", route(POST=H(v.gift_query)), name="gift-query"),
    path("api/Gift/Query/FullGift", route(POST=H(partial(v.gift_query, full=True))), name="gift-query-full"),
    path(
        "api/Gift/ReversingTransaction",
        route(POST=H(v.reversing_transaction, write=True)),
        name="gift-reversing-transaction",
    ),
    path("api/Gift/<int:gift_id>", route(GET=H(v.gift_detail)), name="gift-detail"),
    path("api/Gift/ByContact/<int:contact_id>", route(GET=H(v.gifts_by_contact)), name="gifts-by-contact"),
    path(
        "api/Gift/<str:transaction_source>/<str:transaction_id>",
        route(GET=H(v.gift_by_transaction)),
        name="gift-by-transaction",
    ),
    path("api/RecurringGift", route(POST=H(v.recurring_create, write=True)), name="recurring-create"),
    path("api/RecurringGift/<int:recurring_id>", route(GET=H(v.recurring_detail)), name="recurring-detail"),
    path(
        "api/RecurringGift/ByContact/<int:contact_id>",
        route(GET=H(v.recurring_by_contact)),
        name="recurring-by-contact",
    ),
    path(
        "api/RecurringGift/Cancel/<int:recurring_id>",
        route(PUT=H(v.recurring_cancel, write=True)),
        name="recurring-cancel",
    ),
    path("api/Webhook", route(POST=H(v.webhook_create, write=True)), name="webhook-create"),
    path(
        "api/Webhook/<int:webhook_id>",
        route(
            GET=H(v.webhook_detail),
            PUT=H(v.webhook_update, write=True),
            DELETE=H(v.webhook_delete, write=True),
        ),
        name="webhook-detail",
    ),
    path(
        "api/Webhook/<int:webhook_id>/Active",
        route(PUT=H(v.webhook_active, write=True)),
        name="webhook-active",
    ),
]
