"""The import's input: reading CSV/XLSX rows, its settings and fingerprint, a project map, and a
connection's source API spooled into the import layout."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

from django.utils import timezone

from integrations.virtuous.errors import BudgetExhausted
from sync.models import Operation
from sync.outbound.retry import budget_wait

COLUMNS = (
    "donation_id",
    "donor_id",
    "email",
    "first_name",
    "last_name",
    "amount",
    "currency",
    "gift_date",
    "project",
    "project_code",
    "gift_type",
    "notes",
    "source_error",
)
REQUIRED_COLUMNS = ("donation_id", "donor_id", "amount", "gift_date")
CHUNK_SIZE = 1000
T = TypeVar("T")


class ImportFileError(ValueError):
    """The file itself cannot be read as an import (format, header)."""


class ImportStopped(Exception):
    """The run stopped cleanly at a committed row (budget, Virtuous unavailable); resume later."""

    def __init__(self, reason: str, retry_in: float = 0.0):
        super().__init__(reason)
        self.reason = reason
        self.retry_in = retry_in


def budgeted(call: Callable[[], T], max_wait: float) -> T:
    """``call()`` within the bulk budget (``budget_wait``); a spent budget stops the run, resumable."""
    try:
        return budget_wait(call, max_wait=max_wait)
    except BudgetExhausted as exc:
        raise ImportStopped("rate budget for bulk work is spent", exc.retry_in) from exc


@dataclass(frozen=True)
class ImportSettings:
    """What turns a row into a Virtuous gift; all of it goes into the run's fingerprint."""

    transaction_source: str
    batch_label: str
    project_map: dict[str, str]
    currency: str = "USD"
    gift_type: str = "Other"

    def as_dict(self) -> dict[str, Any]:
        return {
            "transaction_source": self.transaction_source,
            "batch_label": self.batch_label,
            "project_map": dict(sorted(self.project_map.items())),
            "currency": self.currency,
            "gift_type": self.gift_type,
        }


def batch_label_default(today: dt.date | None = None) -> str:
    """``Historical-Import-YYYY-MM`` for the month the import is run."""
    today = today or timezone.localdate()
    return f"Historical-Import-{today:%Y-%m}"


# --- reading -------------------------------------------------------------------------------


def import_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    """(data row number from 1, row) for every row of a CSV or XLSX file, streamed.

    Header names are matched case-insensitively with spaces as underscores; unknown columns are
    ignored, missing required ones fail before the first row.
    """
    suffix = path.suffix.lower()
    if suffix == ".xlsx":
        yield from _xlsx_rows(path)
        return
    if suffix not in (".csv", ".txt"):
        raise ImportFileError(f"{path.name}: use a .csv or .xlsx file.")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        names = _header(header, path)
        for number, values in enumerate(reader, start=1):
            if not any(v.strip() for v in values):
                continue
            yield number, _row(names, values)


def _xlsx_rows(path: Path) -> Iterator[tuple[int, dict[str, str]]]:
    import openpyxl

    workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = workbook.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header = next(rows, None)
        names = _header([str(h) if h is not None else "" for h in header or []], path)
        for number, values in enumerate(rows, start=1):
            cells = [_cell_text(v) for v in values]
            if not any(cells):
                continue
            yield number, _row(names, cells)
    finally:
        workbook.close()


def _cell_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float):
        return format(Decimal(str(value)), "f")  # 25.5 stays "25.5", never "25.499999"
    return str(value).strip()


def _header(header: list[str] | None, path: Path) -> list[str]:
    if not header:
        raise ImportFileError(f"{path.name} is empty: expected a header row.")
    names = [h.strip().lower().replace(" ", "_") for h in header]
    missing = [c for c in REQUIRED_COLUMNS if c not in names]
    if "project" not in names and "project_code" not in names:
        missing.append("project or project_code")
    if missing:
        raise ImportFileError(f"{path.name} lacks the column(s): {', '.join(missing)}.")
    return names


def _row(names: list[str], values: list[str]) -> dict[str, str]:
    return {
        name: (value or "").strip() for name, value in zip(names, values, strict=False) if name in COLUMNS
    }


def count_rows(path: Path) -> int | None:
    """A quick row count for the progress bar (CSV lines; XLSX dimensions); None if unknown."""
    if path.suffix.lower() == ".xlsx":
        return None
    with path.open("rb") as handle:
        return max(sum(1 for _ in handle) - 1, 0)


def input_fingerprint(path: Path, settings: ImportSettings) -> str:
    """Hash of the file's bytes and everything that shapes the payloads."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    digest.update(json.dumps(settings.as_dict(), sort_keys=True).encode())
    return digest.hexdigest()


def project_map_load(path: Path) -> dict[str, str]:
    """A JSON object, or a two-column CSV ``source_project,project_code`` (header optional)."""
    text = path.read_text(encoding="utf-8-sig")
    if path.suffix.lower() == ".json":
        data = json.loads(text)
        if not isinstance(data, dict):
            raise ImportFileError(f"{path.name}: expected a JSON object of source project → code.")
        return {str(k).strip(): str(v).strip() for k, v in data.items() if str(v).strip()}
    mapping: dict[str, str] = {}
    for row in csv.reader(io.StringIO(text)):
        if len(row) < 2 or not row[0].strip() or not row[1].strip():
            continue
        if row[0].strip().lower() in ("source_project", "project") and not mapping:
            continue
        mapping[row[0].strip()] = row[1].strip()
    return mapping


def historical_spool_from_connection(
    *,
    connection: Any,
    since: dt.date,
    until: dt.date,
    path: Path,
    on_progress: Callable[[int], None] | None = None,
) -> int:
    """Read a date window of donations through the connection's poller into a CSV in the import layout.

    The provider's own mapper makes each gift (so historical and live gifts carry the same ids),
    with the connection's default project switched off: an unmapped project becomes a row with a
    ``source_error``, which validation reports. The steady-state checkpoint is not touched.
    Returns the number of rows written.
    """
    from dataclasses import replace

    from integrations.common.mapping import MappingContext, event_map
    from integrations.common.polling import PollContext
    from integrations.common.secrets import connection_secret
    from integrations.registry import provider_get
    from integrations.types import MalformedPayload, MappingError, PolledRecord

    spec = provider_get(connection.provider)
    if spec.poll is None:
        raise ImportFileError(f"{spec.label} has no poller to read history from; export a file instead.")
    mapping = replace(MappingContext.from_connection(connection), default_project_code="")
    start = dt.datetime.combine(since, dt.time(), tzinfo=mapping.tz)
    written = 0
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        writer.writeheader()

        def emit(record: PolledRecord) -> bool:
            nonlocal written
            day = record.modified_at.astimezone(mapping.tz).date()
            if not since <= day <= until:
                return False
            handler = spec.handlers.get(record.event_type)
            if handler is None:
                return False
            try:
                outcome = event_map(handler, mapping, record.payload)
            except (MappingError, MalformedPayload) as exc:
                writer.writerow({"donation_id": record.record_id, "source_error": str(exc)})
                written += 1
                return True
            for request in outcome.requests:
                if request.operation == Operation.GIFT_TRANSACTION:
                    writer.writerow(_spool_row(request.payload))
                    written += 1
            if on_progress:
                on_progress(written)
            return True

        context = PollContext(
            load_checkpoint=lambda resource: (start, ""),
            save_checkpoint=lambda resource, timestamp, record_id: None,
            emit=emit,
            secret=lambda purpose: connection_secret(connection, purpose),
            mapping=mapping,
        )
        spec.poll(connection, context)
    return written


def _spool_row(payload: dict[str, Any]) -> dict[str, str]:
    contact = payload.get("contact") or {}
    designations = payload.get("designations") or []
    row = {
        "donation_id": str(payload.get("transactionId", "")),
        "donor_id": str(contact.get("referenceId", "")),
        "email": contact.get("email", ""),
        "first_name": contact.get("firstName", ""),
        "last_name": contact.get("lastName", ""),
        "amount": str(payload.get("amount", "")),
        "currency": payload.get("currencyCode", ""),
        "gift_date": payload.get("giftDate", ""),
        "project_code": designations[0].get("projectCode", "") if designations else "",
        "gift_type": payload.get("giftType", ""),
        "notes": payload.get("notes", ""),
    }
    if len(designations) > 1:
        row["source_error"] = "split designations are not supported by the import layout"
    return row
