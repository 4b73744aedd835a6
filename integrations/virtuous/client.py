"""Placeholder of the client contract so sync/ can be built in parallel; replaced by the client branch."""

from dataclasses import dataclass


@dataclass(frozen=True)
class CallRecord:
    method: str
    path: str
    status_code: int | None
    duration_ms: int
    request_id: str | None
    error_class: str | None
    rate_remaining: int | None
    rate_reset: float | None


class VirtuousClient:
    @classmethod
    def for_tenant(cls, tenant, *, keep_reserve=False, on_call=None):
        raise NotImplementedError("replaced by the client branch")
