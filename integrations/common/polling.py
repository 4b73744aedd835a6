"""What a poller gets from the sync room (the one contract between a provider's poller and sync)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from integrations.common.mapping import MappingContext
from integrations.types import PolledRecord


@dataclass(frozen=True)
class PollContext:
    """What a poller gets from the sync room: its checkpoints per resource, a way to save them
    (every 100 records, so an interrupted run resumes), a way to emit changes, and its secrets.

    Checkpoints are the *source-side* modified time plus an id tie-breaker, never wall-clock.
    """

    load_checkpoint: Callable[[str], tuple[datetime | None, str]]
    save_checkpoint: Callable[[str, datetime, str], None]
    emit: Callable[[PolledRecord], bool]
    secret: Callable[[str], str | None]
    mapping: MappingContext
