"""How a failed Virtuous call is classified, so callers decide retry, pause or dead letter.

One exception type carries the class (spec section 4.7); the classification of a status code
lives here and nowhere else.
"""

from __future__ import annotations

from django.db import models


class ErrorClass(models.TextChoices):
    TRANSIENT = "transient", "Transient (retry with backoff)"
    RATE_LIMITED = "rate_limited", "Rate limited (tenant paused until Retry-After)"
    NEEDS_ATTENTION = "needs_attention", "Needs attention (tenant paused, alert, no retry)"
    PERMANENT = "permanent", "Permanent (dead letter)"
    NOT_FOUND = "not_found", "Not found (caller decides)"
    CONFLICT = "conflict", "Conflict (caller decides)"


def classify_status(status_code: int) -> ErrorClass | None:
    """The class of an HTTP status, or None for success (2xx)."""
    if 200 <= status_code < 300:
        return None
    if status_code == 429:
        return ErrorClass.RATE_LIMITED
    if status_code == 401:
        return ErrorClass.NEEDS_ATTENTION
    if status_code == 404:
        return ErrorClass.NOT_FOUND
    if status_code == 409:
        return ErrorClass.CONFLICT
    if status_code == 408 or status_code >= 500:
        return ErrorClass.TRANSIENT
    # 400, 403, 422, other 4xx, and redirects (never followed with a token attached).
    return ErrorClass.PERMANENT


class VirtuousError(Exception):
    """A Virtuous call that did not succeed. ``details`` keeps Virtuous's ``error.details[]``."""

    def __init__(
        self,
        error_class: ErrorClass,
        message: str,
        *,
        status_code: int | None = None,
        details: list[dict] | None = None,
        retry_after: float | None = None,
        request_id: str | None = None,
    ) -> None:
        self.error_class = ErrorClass(error_class)
        self.status_code = status_code
        self.message = message
        self.details = list(details or [])
        self.retry_after = retry_after
        self.request_id = request_id
        super().__init__(str(self))

    def __str__(self) -> str:
        status = self.status_code if self.status_code is not None else "-"
        return f"[{self.error_class.value} {status}] {self.message}"

    @property
    def retryable(self) -> bool:
        return self.error_class in (ErrorClass.TRANSIENT, ErrorClass.RATE_LIMITED)


class BudgetExhausted(Exception):
    """Raised before sending when the tenant's bucket has no token or the tenant is paused."""

    def __init__(self, retry_in: float) -> None:
        self.retry_in = retry_in
        super().__init__(f"Virtuous request budget exhausted; retry in {retry_in:.1f} s")
