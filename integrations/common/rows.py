"""Fixed statements for the hot paths: SQL text built once per process from a model's fields,
and ``bulk_insert`` for the bulk path's many rows.

A webhook is one read and one INSERT (one checked INSERT once its connection is remembered).
Through the ORM, compiling such statements cost more CPU than everything else in the request;
here the text is built once, the values are prepared by
the same field methods the ORM uses, and on PostgreSQL the statements go through a server-binding
cursor that prepares them (planning then happens once per connection). See
docs/decisions.md, "Issue 17: capture path and submitter".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import psycopg
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections, transaction
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from django.db.models import Field, Model


def fixed_cursor(db: BaseDatabaseWrapper) -> CursorWrapper:
    """A cursor for a statement whose text never changes. On PostgreSQL (unless
    ``DATABASE_PREPARED_STATEMENTS`` is off) it binds on the server, so psycopg prepares the
    statement on its first use in a connection (the settings set ``prepare_threshold``); Django's
    wrapper still maps errors (IntegrityError) and logs queries as for any cursor."""
    if db.vendor != "postgresql" or not settings.DATABASE_PREPARED_STATEMENTS:
        return db.cursor()
    db.ensure_connection()
    db.validate_thread_sharing()
    with db.wrap_database_errors:
        cursor = psycopg.Cursor(db.connection)  # prepared: settings set prepare_threshold
    return _FixedDebugCursor(cursor, db) if db.queries_logged else db.make_cursor(cursor)


def quoted_columns(model: type[Model], db: BaseDatabaseWrapper) -> dict[str, str]:
    """Each concrete field's column, quoted for ``db``, by field name: for hand-written statements."""
    return {field.name: db.ops.quote_name(field.column) for field in model._meta.concrete_fields}


class _FixedDebugCursor(CursorDebugWrapper):
    """Logs a prepared statement as written: Django reads a statement's text back from a
    client-binding cursor, and a server-binding one has none to give (it would log None)."""

    def debug_sql(self, sql=None, params=None, use_last_executed_query=False, many=False):  # type: ignore[override]
        return super().debug_sql(sql, params, use_last_executed_query=False, many=many)


class RowLoader:
    """One model's columns in a hand-written SELECT, and the instance built from them with the
    converters the ORM applies (UUIDs, JSON, datetimes on SQLite)."""

    def __init__(self, model: type[Model], alias: str, db: BaseDatabaseWrapper) -> None:
        self.model = model
        fields = model._meta.concrete_fields
        self.width = len(fields)
        self.columns = [field.get_col(alias) for field in fields]
        self.converters = [db.ops.get_db_converters(col) + col.get_db_converters(db) for col in self.columns]
        self.names = [field.attname for field in fields]
        self.select = ", ".join(f"{alias}.{db.ops.quote_name(field.column)}" for field in fields)

    def build(self, db: BaseDatabaseWrapper, values: Sequence[Any]) -> Model:
        converted = []
        for value, col, converters in zip(values, self.columns, self.converters, strict=True):
            for convert in converters:
                value = convert(value, col, db)
            converted.append(value)
        return self.model.from_db(db.alias, self.names, converted)


class RowInserter:
    """``obj.save(force_insert=True)`` for a model without save hooks or signal receivers: one
    INSERT of every concrete field but the auto primary key, values prepared by the fields' own
    ``pre_save``/``get_db_prep_save``, the new key read back.

    With ``where`` (an SQL condition with its own placeholders, given to ``insert`` as
    ``where_params``) the row is stored only when the condition holds, in the same statement:
    ``INSERT … SELECT … WHERE``, and ``insert`` returns False when it did not.
    """

    def __init__(self, model: type[Model], db: BaseDatabaseWrapper, *, where: str = "") -> None:
        meta = model._meta
        qn = db.ops.quote_name
        self.fields = [field for field in meta.local_concrete_fields if field is not meta.auto_field]
        self.returning = db.features.can_return_columns_from_insert
        if where:
            values = ", ".join(_typed_placeholder(field, db) for field in self.fields)
            source = f"SELECT {values} WHERE {where}"
        else:
            source = f"VALUES ({', '.join(['%s'] * len(self.fields))})"
        self.sql = (
            f"INSERT INTO {qn(meta.db_table)} ({', '.join(qn(f.column) for f in self.fields)}) {source}"
            + (f" RETURNING {qn(meta.pk.column)}" if self.returning else "")
        )
        self.table, self.pk_column = meta.db_table, meta.pk.column

    def insert(self, db: BaseDatabaseWrapper, obj: Model, where_params: Sequence[Any] = ()) -> bool:
        values = [field.get_db_prep_save(field.pre_save(obj, True), connection=db) for field in self.fields]
        with fixed_cursor(db) as cursor:
            cursor.execute(self.sql, [*values, *where_params])
            if self.returning:
                row = cursor.fetchone()
                if row is None:
                    return False
                pk = row[0]
            else:
                if cursor.rowcount == 0:
                    return False
                pk = db.ops.last_insert_id(cursor, self.table, self.pk_column)
        obj.pk = pk
        obj._state.adding = False
        obj._state.db = db.alias
        return True


_LENGTH = re.compile(r"\(.*?\)")  # "varchar(32)" -> "varchar"


def _typed_placeholder(field: Field, db: BaseDatabaseWrapper) -> str:
    """A value's placeholder in ``INSERT … SELECT``, where no target column types it: PostgreSQL
    is told the column's type, without a length, so that the column still refuses a value too long
    for it rather than the cast cutting it short. SQLite needs no type."""
    if db.vendor != "postgresql":
        return "%s"
    return f"CAST(%s AS {_LENGTH.sub('', field.cast_db_type(db))})"


def bulk_insert(
    model: type[Model],
    objs: Sequence[Model],
    *,
    unique_fields: Sequence[str] = (),
    update_fields: Sequence[str] = (),
    using: str = DEFAULT_DB_ALIAS,
) -> None:
    """``bulk_create`` with ``ignore_conflicts``, or with ``update_conflicts`` on ``unique_fields``
    when ``update_fields`` are given, for the bulk path's many rows. Primary keys are not read back.

    On PostgreSQL the rows go in by ``COPY`` to a scratch table (created, filled and dropped inside
    a savepoint), then one ``INSERT … SELECT … ON CONFLICT`` moves them: ``bulk_create`` quotes every
    value of its ``UNNEST`` arrays in Python, ``COPY`` formats rows in psycopg's C code. Values are
    prepared by the fields' own ``pre_save``/``get_db_prep_save``, as the ORM would. Elsewhere it is
    ``bulk_create`` itself.
    """
    if not objs:
        return
    # The wrapper itself: every field's preparation reads the connection several times, and
    # django.db.connection is a proxy that looks the wrapper up per attribute (a third of the CPU).
    db = connections[using]
    if db.vendor != "postgresql":
        conflicts = {"update_conflicts": True} if update_fields else {"ignore_conflicts": True}
        model._default_manager.using(using).bulk_create(
            objs,
            unique_fields=unique_fields or None,
            update_fields=update_fields or None,
            batch_size=500,
            **conflicts,
        )
        return
    meta = model._meta
    qn = db.ops.quote_name
    fields = [field for field in meta.local_concrete_fields if field is not meta.auto_field]
    columns = ", ".join(qn(f.column) for f in fields)
    on_conflict = "ON CONFLICT DO NOTHING"
    if update_fields:
        col = quoted_columns(model, db)
        key = ", ".join(col[name] for name in unique_fields)
        changed = ", ".join(f"{col[name]} = EXCLUDED.{col[name]}" for name in update_fields)
        on_conflict = f"ON CONFLICT ({key}) DO UPDATE SET {changed}"
    scratch = qn(f"giftline_copy_{meta.db_table}")
    with transaction.atomic(using=using), db.cursor() as cursor:
        cursor.execute(
            f"CREATE TEMPORARY TABLE {scratch} AS SELECT {columns} FROM {qn(meta.db_table)} WITH NO DATA"
        )
        with db.wrap_database_errors, cursor.cursor.copy(f"COPY {scratch} ({columns}) FROM STDIN") as copy:
            for obj in objs:
                copy.write_row([f.get_db_prep_save(f.pre_save(obj, True), connection=db) for f in fields])
        cursor.execute(
            f"INSERT INTO {qn(meta.db_table)} ({columns}) SELECT {columns} FROM {scratch} {on_conflict}"
        )
        cursor.execute(f"DROP TABLE {scratch}")
