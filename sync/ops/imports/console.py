"""The historical import as the console runs it: an uploaded file spooled outside the web root,
then validation, enqueueing and sign-off in django-q2 tasks, never in the web request.

The run's file and its settings wait in ``settings.IMPORT_SPOOL_DIR`` under the run's public id
(``<id>.csv``/``<id>.xlsx`` and ``<id>.json``) until every row is queued, then are deleted. The
passes themselves are ``validate``, ``enqueue`` and ``signoff``; this module only feeds them.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from integrations.virtuous.errors import VirtuousError
from sync.clients import virtuous_client
from sync.models import ImportRun
from sync.ops.imports.enqueue import historical_import_enqueue, import_run_open
from sync.ops.imports.files import (
    ImportFileError,
    ImportSettings,
    ImportStopped,
    import_rows,
    input_fingerprint,
)
from sync.ops.imports.signoff import import_run_signoff
from sync.ops.imports.validate import ContactResolver, historical_import_validate
from tenants.models import Tenant
from tenants.services import SYSTEM, Actor, audit_record

SUFFIXES = (".csv", ".xlsx")
# Phases a person may start the enqueue pass from (blocked only when they chose to skip errors).
STARTABLE = (ImportRun.Phase.VALIDATED, ImportRun.Phase.BLOCKED)


def _spool_dir() -> Path:
    path = Path(settings.IMPORT_SPOOL_DIR)
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    return path


def import_spool_path(run: ImportRun) -> Path | None:
    """The run's spooled file, or None once its rows are all queued (or it came from the shell)."""
    for suffix in SUFFIXES:
        path = Path(settings.IMPORT_SPOOL_DIR) / f"{run.public_id}{suffix}"
        if path.exists():
            return path
    return None


def import_settings_of(run: ImportRun) -> ImportSettings:
    data = json.loads((Path(settings.IMPORT_SPOOL_DIR) / f"{run.public_id}.json").read_text())
    return ImportSettings(**data)


def import_upload_store(
    *,
    tenant: Tenant,
    name: str,
    chunks: Any,
    import_settings: ImportSettings,
    actor: Actor,
) -> tuple[ImportRun, bool]:
    """Spool an uploaded file and open its run: (run, resumed). Checks the size and the header
    before anything is recorded; the same file with the same settings resumes its unfinished run.

    ``chunks`` is an iterable of bytes (Django's ``UploadedFile.chunks()``).
    """
    suffix = Path(name).suffix.lower()
    if suffix not in SUFFIXES:
        raise ImportFileError(f"{name}: upload a .csv or .xlsx file.")
    spool = _spool_dir()
    handle, temp_name = tempfile.mkstemp(prefix="upload-", suffix=suffix, dir=spool)
    temp = Path(temp_name)
    try:
        _write_limited(os.fdopen(handle, "wb"), chunks, name)
        _check_readable(temp, name)
        fingerprint = input_fingerprint(temp, import_settings)
        with transaction.atomic():
            run, resumed = import_run_open(
                tenant=tenant,
                kind=ImportRun.Kind.HISTORICAL_GIFTS,
                source_label=Path(name).name,
                fingerprint=fingerprint,
                transaction_source=import_settings.transaction_source,
                batch_label=import_settings.batch_label,
            )
            if not resumed or import_spool_path(run) is None:
                temp.replace(spool / f"{run.public_id}{suffix}")
                (spool / f"{run.public_id}.json").write_text(json.dumps(import_settings.as_dict()))
            audit_record(
                actor=actor,
                action="import_run.resumed" if resumed else "import_run.uploaded",
                tenant=tenant,
                target=run,
                details={"file": Path(name).name, "batch": import_settings.batch_label},
            )
    finally:
        temp.unlink(missing_ok=True)
    return run, resumed


def _write_limited(out: BinaryIO, chunks: Any, name: str) -> None:
    limit = settings.IMPORT_UPLOAD_MAX_BYTES
    written = 0
    with out:
        for chunk in chunks:
            written += len(chunk)
            if written > limit:
                raise ImportFileError(
                    f"{name} is larger than {limit // (1024 * 1024)} MB: split it into smaller files."
                )
            out.write(chunk)
    if written == 0:
        raise ImportFileError(f"{name} is empty.")


def _check_readable(path: Path, name: str) -> None:
    """The header and the first row, so a wrong file is refused on the upload page itself."""
    try:
        next(iter(import_rows(path)), None)
    except ImportFileError as exc:
        raise ImportFileError(str(exc).replace(path.name, name)) from exc
    except (UnicodeDecodeError, ValueError, KeyError, OSError, zipfile.BadZipFile) as exc:
        # openpyxl's and csv's own complaints: a file that is not what its name says.
        raise ImportFileError(f"{name} is not a readable {path.suffix[1:].upper()} file ({exc}).") from exc


def import_run_start(*, run: ImportRun, skip_invalid: bool, actor: Actor) -> bool:
    """Claim a validated run for the enqueue pass (one click wins); the caller queues the task.

    A run blocked by invalid rows starts only when the person chose to skip them.
    """
    phases = STARTABLE if skip_invalid else (ImportRun.Phase.VALIDATED,)
    with transaction.atomic():
        claimed = ImportRun.objects.filter(pk=run.pk, phase__in=phases).update(
            phase=ImportRun.Phase.ENQUEUING, note="", updated_at=timezone.now()
        )
        if claimed:
            audit_record(
                actor=actor,
                action="import_run.started",
                tenant=run.tenant,
                target=run,
                details={"batch": run.batch_label, "skip_invalid": skip_invalid},
            )
    return bool(claimed)


def import_run_resume(*, run: ImportRun, actor: Actor) -> bool:
    """A paused validation (rate budget, Virtuous unreachable) goes on from its last row."""
    with transaction.atomic():
        claimed = ImportRun.objects.filter(pk=run.pk, phase=ImportRun.Phase.PAUSED).update(
            phase=ImportRun.Phase.VALIDATING, note="", updated_at=timezone.now()
        )
        if claimed:
            audit_record(actor=actor, action="import_run.resumed", tenant=run.tenant, target=run)
    return bool(claimed)


def import_run_signoff_requested(*, run: ImportRun) -> None:
    """Say on the run that the comparison is under way until its task ends (the task audits it)."""
    ImportRun.objects.filter(pk=run.pk).update(note="Comparing with Virtuous…", updated_at=timezone.now())


# --- the task bodies (sync.tasks wraps them) -------------------------------------------------


def import_run_validate_now(run: ImportRun, *, max_wait: float = 60.0) -> ImportRun:
    """The validation pass of a console upload, contacts looked up on the bulk budget."""
    if run.phase != ImportRun.Phase.VALIDATING:
        return run  # a second delivery of the task, or a run already past validation
    path = import_spool_path(run)
    if path is None:
        return _pause(run, "The uploaded file is gone: upload it again.")
    import_settings = import_settings_of(run)
    try:
        client = virtuous_client(run.tenant, keep_reserve=True)
    except VirtuousError as exc:
        return _pause(run, f"Virtuous could not be reached to look up donors: {exc}")
    resolver = ContactResolver(client, reference_source=import_settings.transaction_source, max_wait=max_wait)
    try:
        return historical_import_validate(run=run, path=path, settings=import_settings, resolver=resolver)
    except ImportStopped:
        run.refresh_from_db()
        return run
    except VirtuousError as exc:
        return _pause(run, f"Virtuous could not be reached to look up donors: {exc}")


def import_run_enqueue_now(run: ImportRun) -> ImportRun:
    """The enqueue pass of a started run; the spooled file is deleted once every row is queued."""
    if run.phase != ImportRun.Phase.ENQUEUING:
        return run
    path = import_spool_path(run)
    if path is None:
        return _pause(run, "The uploaded file is gone: upload it again (nothing is queued twice).")
    historical_import_enqueue(run=run, path=path, settings=import_settings_of(run), skip_invalid=True)
    if run.phase == ImportRun.Phase.COMPLETED:
        path.unlink(missing_ok=True)
        (Path(settings.IMPORT_SPOOL_DIR) / f"{run.public_id}.json").unlink(missing_ok=True)
    return run


def import_run_signoff_now(run: ImportRun, *, actor: Actor = SYSTEM, max_wait: float = 60.0) -> dict | None:
    """Compare the run's batch with Virtuous and keep the result on the run; a failure is noted."""
    try:
        signoff = import_run_signoff(run=run, actor=actor, max_wait=max_wait)
    except (ImportStopped, VirtuousError) as exc:
        ImportRun.objects.filter(pk=run.pk).update(
            note=f"Sign-off could not finish: {getattr(exc, 'reason', exc)}. Try again later."[:500],
            updated_at=timezone.now(),
        )
        return None
    ImportRun.objects.filter(pk=run.pk).update(note="", updated_at=timezone.now())
    return signoff


def _pause(run: ImportRun, note: str) -> ImportRun:
    run.phase = ImportRun.Phase.PAUSED
    run.note = note[:500]
    run.save(update_fields=["phase", "note", "updated_at"])
    return run
