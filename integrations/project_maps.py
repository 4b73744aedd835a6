"""A connection's project map (source campaign or form id → Virtuous project code) and its default
project: checked the same way wherever a person edits them (the console's rows, ``connection_maps``),
changed only through ``connection_project_map_update``, which leaves an audit row with the diff.

Codes are checked for plausibility, not existence: the client offers no project query, and the
console must stay usable while Virtuous is down. Virtuous refuses an unknown code on the gift, which
lands as a readable dead letter ("project code GEN unknown") with its own fix.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from django.db import transaction

from integrations.models import Connection
from integrations.registry import provider_get

SOURCE_KEY_MAX = 200
PROJECT_CODE_MAX = 64  # Connection.default_project_code's length
# Printable text without the characters that only arrive by pasting JSON, HTML or a quoted value.
_PLAUSIBLE_CODE = re.compile(r"[^\x00-\x1f\x7f{}\[\]<>\"'`]+")


class ProjectMapInvalid(ValueError):
    """Every problem with the rows given, each a sentence naming its row or key."""

    def __init__(self, errors: list[str]):
        self.errors = errors
        super().__init__(" ".join(errors))


def project_code_problem(code: str) -> str:
    """Why ``code`` cannot be a Virtuous project code, or "" when it can."""
    if not code:
        return "is empty"
    if len(code) > PROJECT_CODE_MAX:
        return f"is longer than {PROJECT_CODE_MAX} characters"
    if not _PLAUSIBLE_CODE.fullmatch(code):
        return "contains characters a project code does not have (quotes, brackets or line breaks)"
    return ""


def project_map_clean(rows: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Rows of (source key, project code) → the map. Blank rows are skipped; a half-filled row,
    a repeated source key, an over-long key or an implausible code is named by its row number."""
    cleaned: dict[str, str] = {}
    first_row: dict[str, int] = {}
    errors: list[str] = []
    for number, (raw_key, raw_code) in enumerate(rows, start=1):
        key, code = str(raw_key or "").strip(), str(raw_code or "").strip()
        if not key and not code:
            continue
        if not key:
            errors.append(f"Row {number}: give the source campaign or form id that maps to {code!r}.")
            continue
        if not code:
            errors.append(f"Row {number}: give the Virtuous project code for {key!r}.")
            continue
        if len(key) > SOURCE_KEY_MAX:
            errors.append(f"Row {number}: the source id is longer than {SOURCE_KEY_MAX} characters.")
            continue
        problem = project_code_problem(code)
        if problem:
            errors.append(f"Row {number}: the project code {code[:40]!r} {problem}.")
            continue
        if key in first_row:
            errors.append(f"Row {number}: {key!r} is already mapped in row {first_row[key]}; keep one row.")
            continue
        first_row[key] = number
        cleaned[key] = code
    if errors:
        raise ProjectMapInvalid(errors)
    return cleaned


def project_map_diff(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, dict]:
    """What changed, for the audit row and the confirmation line."""
    return {
        "added": {k: after[k] for k in sorted(after.keys() - before.keys())},
        "changed": {
            k: [before[k], after[k]] for k in sorted(after.keys() & before.keys()) if before[k] != after[k]
        },
        "removed": {k: before[k] for k in sorted(before.keys() - after.keys())},
    }


def connection_project_map_update(
    *,
    connection: Connection,
    actor,
    rows: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    set_rows: Mapping[str, str] | None = None,
    unset: Iterable[str] = (),
    default_project_code: str | None = None,
) -> dict[str, dict]:
    """Replace the map with ``rows`` (the console sends every row), or change single rows
    (``set_rows``/``unset``, the command); optionally set the default project ("" clears it).
    Merged under a row lock, validated as a whole, audited with the diff; returns the diff
    (empty when nothing changed, and then nothing is written)."""
    from tenants.services import audit_record

    spec = provider_get(connection.provider)
    if not spec.project_key_help:
        raise ProjectMapInvalid([f"{spec.label} connections map no projects (they send no donations)."])
    if default_project_code is not None:
        default_project_code = default_project_code.strip()
        problem = default_project_code and project_code_problem(default_project_code)
        if problem:
            raise ProjectMapInvalid([f"The default project code {default_project_code[:40]!r} {problem}."])
    with transaction.atomic():
        locked = Connection.objects.select_for_update().get(pk=connection.pk)
        before = {str(k): str(v) for k, v in (locked.project_code_map or {}).items()}
        if rows is not None:
            after = project_map_clean(rows.items() if isinstance(rows, Mapping) else rows)
        else:
            missing = [key for key in unset if key not in before]
            if missing:
                raise ProjectMapInvalid([f"There is no row for {key!r} to remove." for key in missing])
            kept = [(k, v) for k, v in before.items() if k not in set(unset) and k not in (set_rows or {})]
            after = project_map_clean([*kept, *(set_rows or {}).items()])
        diff = project_map_diff(before, after)
        default_before = locked.default_project_code
        if default_project_code is not None and default_project_code != default_before:
            diff["default_project_code"] = [default_before, default_project_code]
        if not any(diff.values()):
            return {}
        fields = {"project_code_map": after}
        if "default_project_code" in diff:
            fields["default_project_code"] = default_project_code
        Connection.objects.filter(pk=locked.pk).update(**fields)
        for name, value in fields.items():
            setattr(connection, name, value)
        audit_record(
            actor=actor,
            action="connection.project_map_changed",
            tenant=connection.tenant,
            target=connection,
            details={name: value for name, value in diff.items() if value},
        )
    return {name: value for name, value in diff.items() if value}
