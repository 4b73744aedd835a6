"""The historical gift import (spec 4.4, seed Pattern 5): validate a file, then feed the shared queue.

The file is read twice, row by row, never held in memory: a validation pass that produces the
report a customer reviews (structural checks, then contact resolution through ``Contact/Find``
within the tenant's bulk budget), and an enqueue pass that puts gifts into the same outbound queue
as live donations with origin ``bulk`` (lower priority) in chunks. Each pass commits its position
with its counters, so an interrupted run resumes at the next row, and the queue's idempotency keys
make a re-run enqueue nothing twice.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO

from django.db import transaction
from django.utils import timezone

from integrations.common.parsing import to_decimal, to_int
from integrations.types import OutboundRequest
from integrations.virtuous import endpoints
from integrations.virtuous.client import VirtuousClient
from integrations.virtuous.errors import BudgetExhausted, ErrorClass, VirtuousError
from sync.clients import virtuous_client
from sync.models import ImportRun, Operation, Origin, OutboundItem
from sync.outbound.enqueue import outbound_enqueue_many
from tenants.models import Tenant
from tenants.services import Actor, audit_record

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
ERRORS_KEPT = 200
DONOR_CACHE_SIZE = 100_000
CENT = Decimal("0.01")


class ImportFileError(ValueError):
    """The file itself cannot be read as an import (format, header)."""


class ImportStopped(Exception):
    """The run stopped cleanly at a committed row (budget, Virtuous unavailable); resume later."""

    def __init__(self, reason: str, retry_in: float = 0.0):
        super().__init__(reason)
        self.reason = reason
        self.retry_in = retry_in


class RowError(ValueError):
    def __init__(self, category: str, message: str):
        super().__init__(message)
        self.category = category


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


@dataclass(frozen=True)
class ValidRow:
    donation_id: str
    donor_id: str
    email: str
    first_name: str
    last_name: str
    amount: Decimal
    currency: str
    gift_date: str
    project_code: str
    gift_type: str
    notes: str


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


# --- validation ----------------------------------------------------------------------------


def row_validate(row: dict[str, str], settings: ImportSettings, *, today: dt.date) -> ValidRow:
    """Structural checks of one row; raises RowError naming the category and the problem."""
    if row.get("source_error"):
        raise RowError("source_mapping", row["source_error"])
    donation_id = row.get("donation_id", "")
    if not donation_id:
        raise RowError("missing_donation_id", "no donation id")
    donor_id = row.get("donor_id", "")
    if not donor_id:
        raise RowError("missing_donor_id", "no donor id")
    raw_amount = row.get("amount", "")
    try:
        amount = Decimal(raw_amount)
    except InvalidOperation:
        raise RowError("bad_amount", f"amount {raw_amount!r} is not a number") from None
    if not amount.is_finite() or amount <= 0:
        raise RowError("bad_amount", f"amount {raw_amount!r} is not positive")
    if amount != amount.quantize(CENT):
        raise RowError("bad_amount", f"amount {raw_amount!r} has more than two decimals")
    gift_date = row.get("gift_date", "")
    try:
        day = dt.date.fromisoformat(gift_date) if len(gift_date) == 10 else None
    except ValueError:
        day = None
    if day is None:
        raise RowError("bad_date", f"gift date {gift_date!r} is not YYYY-MM-DD")
    if day > today:
        raise RowError("bad_date", f"gift date {gift_date} is in the future")
    email = row.get("email", "")
    if email and ("@" not in email or " " in email):
        raise RowError("bad_email", f"e-mail {email!r} is not an address")
    project_code = _project_code(row, settings)
    currency = (row.get("currency") or settings.currency).upper()
    if len(currency) != 3 or not currency.isalpha():
        raise RowError("bad_currency", f"currency {currency!r} is not an ISO code")
    return ValidRow(
        donation_id=donation_id,
        donor_id=donor_id,
        email=email,
        first_name=row.get("first_name", ""),
        last_name=row.get("last_name", ""),
        amount=amount,
        currency=currency,
        gift_date=gift_date,
        project_code=project_code,
        gift_type=row.get("gift_type") or settings.gift_type,
        notes=row.get("notes", "")[:1000],
    )


def _project_code(row: dict[str, str], settings: ImportSettings) -> str:
    """The map decides; a source project it does not know is an error, never a default."""
    source_project = row.get("project", "")
    if source_project:
        code = settings.project_map.get(source_project)
        if not code:
            raise RowError("unmapped_project", f"project {source_project!r} is not in the project map")
        return code
    code = row.get("project_code", "")
    if not code:
        raise RowError("missing_project", "no project")
    if code not in set(settings.project_map.values()):
        raise RowError("unknown_project_code", f"project code {code!r} is not one of the mapped codes")
    return code


def gift_request(valid: ValidRow, settings: ImportSettings) -> OutboundRequest:
    """The Gift Transaction for one row; transactionId is the source donation id."""
    contact = {"referenceId": valid.donor_id}
    for key, value in (
        ("email", valid.email),
        ("firstName", valid.first_name),
        ("lastName", valid.last_name),
    ):
        if value:
            contact[key] = value
    payload = {
        "transactionSource": settings.transaction_source,
        "transactionId": valid.donation_id,
        "contact": contact,
        "giftDate": valid.gift_date,
        "giftType": valid.gift_type,
        "amount": valid.amount,
        "currencyCode": valid.currency,
        "designations": [{"projectCode": valid.project_code, "amountDesignated": valid.amount}],
        "batch": settings.batch_label,
    }
    if valid.notes:
        payload["notes"] = valid.notes
    return OutboundRequest(
        Operation.GIFT_TRANSACTION, settings.transaction_source, valid.donation_id, payload
    )


class ContactResolver:
    """Contact/Find by our reference, then by e-mail; each donor looked up once (bounded cache).

    Uses the reserve-keeping client, so live donations keep their share of the budget; when the
    bulk share is spent it waits up to ``max_wait`` seconds, then stops the run for a later resume.
    """

    def __init__(self, client: VirtuousClient, *, reference_source: str, max_wait: float = 60.0):
        self.client = client
        self.reference_source = reference_source
        self.max_wait = max_wait
        self.lookups = 0
        self._cache: OrderedDict[str, tuple[str, str]] = OrderedDict()

    def resolve(self, donor_id: str, email: str) -> tuple[str, str]:
        """(category, Virtuous contact id): matched_by_reference, matched_by_email or will_create."""
        cached = self._cache.get(donor_id)
        if cached is not None:
            self._cache.move_to_end(donor_id)
            return cached
        found = self._find(reference_source=self.reference_source, reference_id=donor_id)
        result = ("matched_by_reference", str(found.get("id", ""))) if found else None
        if result is None and email:
            found = self._find(email=email)
            result = ("matched_by_email", str(found.get("id", ""))) if found else None
        result = result or ("will_create", "")
        self._cache[donor_id] = result
        if len(self._cache) > DONOR_CACHE_SIZE:
            self._cache.popitem(last=False)
        return result

    def _find(self, **query: str) -> dict | None:
        waited = 0.0
        for _ in range(3):
            try:
                self.lookups += 1
                return self.client.contact_find(**query)
            except BudgetExhausted as exc:
                if waited + exc.retry_in > self.max_wait:
                    raise ImportStopped("rate budget for bulk work is spent", exc.retry_in) from exc
                time.sleep(exc.retry_in)
                waited += exc.retry_in
            except VirtuousError as exc:
                if exc.error_class not in (ErrorClass.TRANSIENT, ErrorClass.RATE_LIMITED):
                    raise ImportStopped(f"Contact/Find failed: {exc}") from exc
                pause = min(exc.retry_after or 2.0, self.max_wait)
                time.sleep(pause)
                waited += pause
        raise ImportStopped("Contact/Find keeps failing; resume later")


# --- runs ----------------------------------------------------------------------------------


def import_run_open(
    *,
    tenant: Tenant,
    kind: str,
    source_label: str,
    fingerprint: str,
    transaction_source: str = "",
    batch_label: str = "",
) -> tuple[ImportRun, bool]:
    """The unfinished run for this input (resumed=True), or a new one."""
    existing = (
        ImportRun.objects.filter(tenant=tenant, kind=kind, fingerprint=fingerprint)
        .exclude(phase=ImportRun.Phase.COMPLETED)
        .order_by("-started_at")
        .first()
    )
    if existing is not None:
        return existing, True
    run = ImportRun.objects.create(
        tenant=tenant,
        kind=kind,
        source_label=source_label[:300],
        fingerprint=fingerprint,
        transaction_source=transaction_source,
        batch_label=batch_label,
        phase=ImportRun.Phase.VALIDATING
        if kind == ImportRun.Kind.HISTORICAL_GIFTS
        else ImportRun.Phase.MATCHING,
    )
    return run, False


@dataclass
class _Tally:
    counters: dict[str, int]
    projects: dict[str, list]
    errors: list[dict[str, Any]]
    position: int

    @classmethod
    def of(cls, run: ImportRun, position: int) -> _Tally:
        return cls(
            dict(run.counters),
            {k: list(v) for k, v in run.project_totals.items()},
            list(run.errors_sample),
            position,
        )

    def add(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n


def historical_import_validate(
    *,
    run: ImportRun,
    path: Path,
    settings: ImportSettings,
    resolver: ContactResolver | None = None,
    report: TextIO | None = None,
    on_progress: Callable[[int], None] | None = None,
    chunk_size: int = CHUNK_SIZE,
    today: dt.date | None = None,
) -> ImportRun:
    """The validation pass, from the row after ``validated_through_row``. Submits nothing.

    Writes one report line per invalid row and per donor's contact resolution (once per donor
    per session) to ``report`` (CSV: row, donation_id, donor_id, category, detail). Ends in phase
    ``validated``, or ``blocked`` when any row is invalid; ImportStopped leaves it resumable.
    """
    today = today or timezone.localdate()
    tally = _Tally.of(run, run.validated_through_row)
    writer = csv.writer(report) if report is not None else None
    if writer is not None and report.tell() == 0:
        writer.writerow(["row", "donation_id", "donor_id", "category", "detail"])
    reported_donors: set[str] = set()
    try:
        for number, row in import_rows(path):
            if number <= run.validated_through_row:
                continue
            _validate_one(number, row, settings, tally, resolver, writer, reported_donors, today)
            tally.position = number
            if number % chunk_size == 0:
                _save_validation(run, tally)
                if on_progress:
                    on_progress(number)
                if len(reported_donors) > DONOR_CACHE_SIZE:
                    reported_donors.clear()
    except ImportStopped as exc:
        _save_validation(run, tally, phase=ImportRun.Phase.PAUSED, note=f"Stopped: {exc.reason}")
        raise
    invalid = tally.counters.get("invalid", 0)
    phase = ImportRun.Phase.BLOCKED if invalid else ImportRun.Phase.VALIDATED
    note = f"{invalid} invalid row(s): fix the file, or enqueue the valid rows only" if invalid else ""
    _save_validation(run, tally, phase=phase, note=note)
    if on_progress:
        on_progress(tally.position)
    return run


def _validate_one(number, row, settings, tally, resolver, writer, reported_donors, today) -> None:
    # The contact lookup may stop the run: nothing is counted for this row before it has answered.
    try:
        valid = row_validate(row, settings, today=today)
    except RowError as exc:
        tally.add("rows")
        tally.add("invalid")
        tally.add(f"error_{exc.category}")
        donation_id = row.get("donation_id", "")
        entry = {"row": number, "donation_id": donation_id, "category": exc.category, "detail": str(exc)}
        if len(tally.errors) < ERRORS_KEPT:
            tally.errors.append(entry)
        if writer is not None:
            writer.writerow([number, donation_id, row.get("donor_id", ""), exc.category, str(exc)])
        return
    category, virtuous_id = (
        resolver.resolve(valid.donor_id, valid.email) if resolver is not None else ("not_checked", "")
    )
    tally.add("rows")
    tally.add("valid")
    tally.add(f"contact_{category}")
    totals = tally.projects.setdefault(valid.project_code, [0, "0"])
    totals[0] += 1
    totals[1] = str(Decimal(totals[1]) + valid.amount)
    if writer is not None and resolver is not None and valid.donor_id not in reported_donors:
        reported_donors.add(valid.donor_id)
        writer.writerow([number, valid.donation_id, valid.donor_id, category, virtuous_id])


def _save_validation(
    run: ImportRun, tally: _Tally, *, phase: str | None = None, note: str | None = None
) -> None:
    run.validated_through_row = tally.position
    run.counters = tally.counters
    run.project_totals = tally.projects
    run.errors_sample = tally.errors
    fields = ["validated_through_row", "counters", "project_totals", "errors_sample", "updated_at"]
    if phase is not None:
        run.phase = phase
        fields.append("phase")
    if note is not None:
        run.note = note[:500]
        fields.append("note")
    run.save(update_fields=fields)


def historical_import_enqueue(
    *,
    run: ImportRun,
    path: Path,
    settings: ImportSettings,
    skip_invalid: bool = False,
    on_progress: Callable[[int], None] | None = None,
    chunk_size: int = CHUNK_SIZE,
    today: dt.date | None = None,
) -> ImportRun:
    """The enqueue pass, from the row after ``last_row_committed``: chunks of gifts into the queue.

    Each chunk and the run's position commit together, so a crash loses nothing and repeats
    nothing; keys already in the queue (an earlier run, a live capture) are counted, not re-added.
    """
    if run.phase == ImportRun.Phase.BLOCKED and not skip_invalid:
        raise ImportStopped(run.note or "validation found invalid rows")
    if run.phase not in (ImportRun.Phase.VALIDATED, ImportRun.Phase.BLOCKED, ImportRun.Phase.ENQUEUING):
        raise ImportStopped(f"run is {run.phase}: validate first")
    today = today or timezone.localdate()
    run.phase = ImportRun.Phase.ENQUEUING
    run.save(update_fields=["phase", "updated_at"])
    chunk: list[OutboundRequest] = []
    position = run.last_row_committed
    skipped = 0
    for number, row in import_rows(path):
        if number <= run.last_row_committed:
            continue
        try:
            chunk.append(gift_request(row_validate(row, settings, today=today), settings))
        except RowError:
            skipped += 1
        position = number
        if len(chunk) >= chunk_size:
            _commit_chunk(run, chunk, position, skipped)
            chunk, skipped = [], 0
            if on_progress:
                on_progress(position)
    _commit_chunk(run, chunk, position, skipped, finished=True)
    if on_progress:
        on_progress(position)
    return run


def _commit_chunk(
    run: ImportRun, chunk: list[OutboundRequest], position: int, skipped: int, *, finished=False
) -> None:
    with transaction.atomic():
        created = outbound_enqueue_many(tenant=run.tenant, requests=chunk, origin=Origin.BULK)
        counters = dict(run.counters)
        counters["enqueued"] = counters.get("enqueued", 0) + created
        counters["already_queued"] = counters.get("already_queued", 0) + len(chunk) - created
        counters["skipped_invalid"] = counters.get("skipped_invalid", 0) + skipped
        run.counters = counters
        run.last_row_committed = position
        fields = ["counters", "last_row_committed", "updated_at"]
        if finished:
            run.phase = ImportRun.Phase.COMPLETED
            run.finished_at = timezone.now()
            run.note = ""
            fields += ["phase", "finished_at", "note"]
        run.save(update_fields=fields)


# --- sign-off ------------------------------------------------------------------------------


@dataclass
class _Side:
    gifts: int = 0
    donors: set[str] = field(default_factory=set)
    projects: dict[str, list] = field(default_factory=dict)

    def add(self, project: str, amount: Decimal) -> None:
        row = self.projects.setdefault(project or "(none)", [0, Decimal("0")])
        row[0] += 1
        row[1] += amount


def import_signoff(
    *, tenant: Tenant, batch_label: str, client: VirtuousClient | None = None, max_wait: float = 60.0
) -> dict[str, Any]:
    """Counts and sums per project: what we imported under a batch label against what Virtuous holds.

    Ours: the queue items whose payload carries the label (by state, too). Virtuous: every gift of
    the batch, paged through Gift/Query with an id cursor on the bulk budget.
    """
    ours = _Side()
    states: dict[str, int] = {}
    items = OutboundItem.objects.filter(
        tenant=tenant, operation=Operation.GIFT_TRANSACTION, payload__batch=batch_label
    ).values_list("state", "payload")
    for state, payload in items.iterator(chunk_size=2000):
        states[state] = states.get(state, 0) + 1
        ours.gifts += 1
        ours.donors.add(str((payload.get("contact") or {}).get("referenceId", "")))
        for designation in payload.get("designations") or []:
            ours.add(
                str(designation.get("projectCode", "")), Decimal(str(designation.get("amountDesignated")))
            )
    theirs = _virtuous_batch(tenant, batch_label, client, max_wait)
    projects = sorted(set(ours.projects) | set(theirs.projects))
    rows = []
    for project in projects:
        a = ours.projects.get(project, [0, Decimal("0")])
        b = theirs.projects.get(project, [0, Decimal("0")])
        rows.append(
            {
                "project_code": project,
                "imported_count": a[0],
                "imported_sum": a[1],
                "virtuous_count": b[0],
                "virtuous_sum": b[1],
                "count_difference": a[0] - b[0],
                "sum_difference": a[1] - b[1],
            }
        )
    return {
        "tenant": tenant.slug,
        "batch": batch_label,
        "generated_at": timezone.now().isoformat(),
        "imported_gifts": ours.gifts,
        "virtuous_gifts": theirs.gifts,
        "imported_donors": len(ours.donors - {""}),
        "virtuous_donors": len(theirs.donors),
        "queue_states": states,
        "projects": rows,
        "balanced": all(r["count_difference"] == 0 and r["sum_difference"] == 0 for r in rows)
        and ours.gifts == theirs.gifts,
    }


def _virtuous_batch(
    tenant: Tenant, batch_label: str, client: VirtuousClient | None, max_wait: float
) -> _Side:
    client = client or virtuous_client(tenant, keep_reserve=True)
    side = _Side()
    last_id: int | None = None
    while True:
        conditions = [{"parameter": "Batch", "operator": "Is", "value": batch_label}]
        if last_id is not None:
            conditions.append(
                {
                    "parameter": endpoints.QUERY_ID_PARAMETER["gift"],
                    "operator": endpoints.QUERY_GREATER_THAN,
                    "value": str(last_id),
                }
            )
        page = _with_budget(
            lambda c=conditions: client.gift_query(
                [{"conditions": c}], sort_by=endpoints.QUERY_SORT_BY_ID, take=endpoints.MAX_TAKE
            ),
            max_wait,
        )
        for gift in page["list"]:
            side.gifts += 1
            side.donors.add(str(gift.get("contactId", "")))
            designations = gift.get("giftDesignations") or gift.get("designations") or []
            for d in designations:
                side.add(
                    str(d.get("projectCode") or ""), to_decimal(d.get("amountDesignated")) or Decimal("0")
                )
            if not designations:
                side.add("", to_decimal(gift.get("amount")) or Decimal("0"))
        if len(page["list"]) < endpoints.MAX_TAKE:
            return side
        last_id = max(to_int(g.get("id")) or 0 for g in page["list"])


def _with_budget(call: Callable[[], Any], max_wait: float) -> Any:
    waited = 0.0
    while True:
        try:
            return call()
        except BudgetExhausted as exc:
            if waited + exc.retry_in > max_wait:
                raise ImportStopped("rate budget for bulk work is spent", exc.retry_in) from exc
            time.sleep(exc.retry_in)
            waited += exc.retry_in


SIGNOFF_COLUMNS = (
    "project_code",
    "imported_count",
    "imported_sum",
    "virtuous_count",
    "virtuous_sum",
    "count_difference",
    "sum_difference",
)


def signoff_csv_write(signoff: dict[str, Any], stream: TextIO) -> None:
    """The sign-off as CSV: one line per project and a TOTAL line."""
    writer = csv.writer(stream)
    writer.writerow(
        ["tenant", signoff["tenant"], "batch", signoff["batch"], "generated_at", signoff["generated_at"]]
    )
    writer.writerow(SIGNOFF_COLUMNS)
    for row in signoff["projects"]:
        writer.writerow([row[c] for c in SIGNOFF_COLUMNS])
    total = {
        c: sum((Decimal(str(r[c])) for r in signoff["projects"]), Decimal("0")) for c in SIGNOFF_COLUMNS[1:]
    }
    writer.writerow(
        [
            "TOTAL",
            signoff["imported_gifts"],
            total["imported_sum"],
            signoff["virtuous_gifts"],
            total["virtuous_sum"],
            signoff["imported_gifts"] - signoff["virtuous_gifts"],
            total["sum_difference"],
        ]
    )
    writer.writerow(["donors", signoff["imported_donors"], "", signoff["virtuous_donors"]])


def import_run_signoff_store(*, run: ImportRun, signoff: dict[str, Any]) -> None:
    """Keep the latest sign-off on the run, for the admin."""
    run.signoff = signoff
    run.signoff_at = timezone.now()
    run.save(update_fields=["signoff", "signoff_at", "updated_at"])


# --- a connection's source API as the input -----------------------------------------------


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


def import_run_signoff(
    *, run: ImportRun, actor: Actor, client: VirtuousClient | None = None, max_wait: float = 60.0
) -> dict[str, Any]:
    """Sign off a historical import run: compare it with Virtuous, keep the result on the run and
    record who asked (the admin's sign-off action and the ``import_signoff`` command)."""
    signoff = import_signoff(tenant=run.tenant, batch_label=run.batch_label, client=client, max_wait=max_wait)
    with transaction.atomic():
        import_run_signoff_store(run=run, signoff=signoff)
        audit_record(
            actor=actor,
            action="import_run.signed_off",
            tenant=run.tenant,
            target=run,
            details={
                "batch": run.batch_label,
                "balanced": signoff["balanced"],
                "imported_gifts": signoff["imported_gifts"],
                "virtuous_gifts": signoff["virtuous_gifts"],
            },
        )
    return signoff
