"""Placeholder copy of the client contract so sync/ can be built in parallel; replaced by the client branch."""

from django.db import models


class ErrorClass(models.TextChoices):
    TRANSIENT = "transient"
    RATE_LIMITED = "rate_limited"
    NEEDS_ATTENTION = "needs_attention"
    PERMANENT = "permanent"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"


class VirtuousError(Exception):
    def __init__(
        self, error_class, message="", *, status_code=None, details=None, retry_after=None, request_id=None
    ):
        super().__init__(message)
        self.error_class = error_class
        self.message = message
        self.status_code = status_code
        self.details = details or []
        self.retry_after = retry_after
        self.request_id = request_id

    @property
    def retryable(self) -> bool:
        return self.error_class in (ErrorClass.TRANSIENT, ErrorClass.RATE_LIMITED)


class BudgetExhausted(Exception):
    def __init__(self, retry_in: float):
        super().__init__(f"budget exhausted, retry in {retry_in:.1f}s")
        self.retry_in = retry_in
