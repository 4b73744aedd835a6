"""Issue 16: a connection's project map is edited as rows (console) or row by row (command),
checked the same way in both, and every change leaves an audit row with the diff."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.urls import reverse

from integrations.project_maps import ProjectMapInvalid, connection_project_map_update, project_map_clean
from tenants.models import AuditEvent
from tenants.services import SYSTEM


def test_rows_become_a_map_and_blank_rows_are_skipped():
    assert project_map_clean([(" 123 ", " GEN-2024 "), ("", ""), ("456", "Gala 2025")]) == {
        "123": "GEN-2024",
        "456": "Gala 2025",
    }


def test_every_bad_row_is_named_by_its_number():
    with pytest.raises(ProjectMapInvalid) as caught:
        project_map_clean(
            [
                ("123", "GEN"),
                ("", "ORPHAN"),
                ("456", ""),
                ("123", "OTHER"),
                ("789", '{"code": "X"}'),
                ("1", "C" * 65),
            ]
        )
    assert caught.value.errors == [
        "Row 2: give the source campaign or form id that maps to 'ORPHAN'.",
        "Row 3: give the Virtuous project code for '456'.",
        "Row 4: '123' is already mapped in row 1; keep one row.",
        'Row 5: the project code \'{"code": "X"}\' contains characters a project code does not have '
        "(quotes, brackets or line breaks).",
        "Row 6: the project code '" + "C" * 40 + "' is longer than 64 characters.",
    ]


def _change_data(connection, **extra):
    return {
        "name": connection.name,
        "is_active": "on",
        "capture_mode": connection.capture_mode,
        "polling_role": connection.polling_role,
        "poll_interval_minutes": "15",
        "backstop_interval_minutes": "1440",
        "source_name": connection.source_name,
        "default_project_code": connection.default_project_code,
        "settings": "{}",
        "initial-settings": "{}",  # the hidden initial a browser sends for a field with a callable default
        **extra,
    }


def test_the_console_edits_the_map_as_rows_and_audits_the_diff(client, superuser, tenant, make_connection):
    connection = make_connection(tenant, "donorbox", name="Spring appeal")
    connection.project_code_map = {"111": "OLD", "222": "KEEP"}
    connection.save()
    client.force_login(superuser)
    url = reverse("admin:integrations_connection_change", args=[connection.pk])
    page = client.get(url).content.decode()
    assert 'name="project_code_map-key" value="111"' in page and "Donorbox campaign id" in page
    assert "field_map" not in page
    response = client.post(
        url,
        _change_data(
            connection,
            **{
                "project_code_map-key": ["111", "222", "333", ""],
                "project_code_map-value": ["NEW", "KEEP", "GALA", ""],
                "project_code_map-remove": ["1"],
            },
        ),
    )
    assert response.status_code == 302
    connection.refresh_from_db()
    assert connection.project_code_map == {"111": "NEW", "333": "GALA"}
    audit = AuditEvent.objects.get(action="connection.project_map_changed")
    assert audit.details == {
        "added": {"333": "GALA"},
        "changed": {"111": ["OLD", "NEW"]},
        "removed": {"222": "KEEP"},
    }
    assert audit.actor == superuser and audit.tenant == tenant
    assert (
        list(AuditEvent.objects.filter(action="connection.updated").values_list("details", flat=True)) == []
    )


def test_the_console_refuses_duplicate_rows_and_keeps_what_was_typed(
    client, superuser, tenant, make_connection
):
    connection = make_connection(tenant, "donorbox")
    client.force_login(superuser)
    url = reverse("admin:integrations_connection_change", args=[connection.pk])
    response = client.post(
        url,
        _change_data(
            connection, **{"project_code_map-key": ["555", "555"], "project_code_map-value": ["A", "B"]}
        ),
    )
    assert response.status_code == 200
    page = response.content.decode()
    assert "Row 2: &#x27;555&#x27; is already mapped in row 1; keep one row." in page
    assert 'value="B"' in page  # the rows come back as typed
    connection.refresh_from_db()
    assert connection.project_code_map == {}
    assert not AuditEvent.objects.filter(action="connection.project_map_changed").exists()


def test_a_contacts_only_connection_offers_no_project_rows(client, superuser, tenant, make_connection):
    connection = make_connection(tenant, "mailchimp")
    client.force_login(superuser)
    page = client.get(reverse("admin:integrations_connection_change", args=[connection.pk])).content.decode()
    assert "project_code_map" not in page and "Default project code" not in page
    with pytest.raises(ProjectMapInvalid, match="Mailchimp connections map no projects"):
        connection_project_map_update(connection=connection, actor=SYSTEM, set_rows={"a": "B"})


def test_the_command_sets_and_unsets_rows_and_the_default(tenant, make_connection):
    connection = make_connection(tenant, "gofundme_pro")
    out = StringIO()
    call_command(
        "connection_maps", "alpha", str(connection.public_id), "--set", "9001=GALA", "--set", "9002=GEN",
        "--default", "", stdout=out,
    )  # fmt: skip
    connection.refresh_from_db()
    assert connection.project_code_map == {"9001": "GALA", "9002": "GEN"}
    assert connection.default_project_code == ""
    assert "9001 → GALA" in out.getvalue() and "(none: unmapped is an error)" in out.getvalue()
    call_command("connection_maps", "alpha", str(connection.public_id), "--unset", "9002", stdout=StringIO())
    connection.refresh_from_db()
    assert connection.project_code_map == {"9001": "GALA"}
    audits = list(AuditEvent.objects.filter(action="connection.project_map_changed").order_by("pk"))
    assert [a.details for a in audits] == [
        {"added": {"9001": "GALA", "9002": "GEN"}, "default_project_code": ["GEN", ""]},
        {"removed": {"9002": "GEN"}},
    ]
    assert all(a.via == "cli" for a in audits)


def test_the_command_refuses_bad_rows_and_changes_nothing(tenant, make_connection):
    connection = make_connection(tenant, "donorbox")
    with pytest.raises(CommandError, match="no row for '404'"):
        call_command("connection_maps", "alpha", str(connection.public_id), "--set", "1=A", "--unset", "404")
    with pytest.raises(CommandError, match="more than once"):
        call_command("connection_maps", "alpha", str(connection.public_id), "--set", "1=A", "--set", "1=B")
    with pytest.raises(CommandError, match="project code for '1'"):
        call_command("connection_maps", "alpha", str(connection.public_id), "--set", "1=")
    connection.refresh_from_db()
    assert connection.project_code_map == {}
    assert not AuditEvent.objects.filter(action="connection.project_map_changed").exists()


def test_the_command_cannot_reach_another_tenants_connection(tenant, other_tenant, make_connection):
    theirs = make_connection(other_tenant, "donorbox")
    with pytest.raises(CommandError, match="alpha has no connection"):
        call_command("connection_maps", "alpha", str(theirs.public_id), "--set", "1=A")
    theirs.refresh_from_db()
    assert theirs.project_code_map == {}
