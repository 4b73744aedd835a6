"""The partner side of a two-way provider: how the sync room writes a Virtuous change back.

A provider whose ``ProviderSpec`` has a ``PartnerSide`` is a two-way partner. The sync room knows
no partner by name: it finds the side through the registry, reads the partner's tags and opt-outs
inside Virtuous by its prefixes, and calls its writer from the partner drain. A writer raises
``PartnerWriteError`` when the partner refuses (``retryable`` says whether a later try can help)
and ``PartnerThrottled`` when the partner's own budget has no room (nothing was spent).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


class PartnerWriteError(Exception):
    """A partner refused a write; ``retryable`` says whether trying again later can help."""

    def __init__(self, message: str, *, retryable: bool) -> None:
        super().__init__(message)
        self.retryable = retryable


class PartnerThrottled(Exception):
    """The partner's budget has no room soon enough; the caller releases its claims and stops."""

    def __init__(self, message: str, retry_in: float) -> None:
        super().__init__(message)
        self.retry_in = retry_in


# (connection, the partner's id of the contact, the shared-field changes) -> None
PartnerWriter = Callable[[Any, str, dict[str, Any]], None]


@dataclass(frozen=True)
class PartnerSide:
    """How one partner platform is written to, and how its tags and opt-outs read inside Virtuous.

    ``member_tag_prefix``: the partner's own tags travel as ``"<prefix>: <tag>"`` ("MC: vip").
    ``opt_out_prefix``: its opt-outs are the tags ``"<prefix>: <reason>"`` for ``opt_out_reasons``.
    """

    writer: PartnerWriter
    member_tag_prefix: str
    opt_out_prefix: str
    opt_out_reasons: tuple[str, ...] = ("Unsubscribed", "Cleaned")
