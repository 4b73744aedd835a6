"""Shared by the sandbox commands: find an organisation by id or exact name."""

from __future__ import annotations

from django.core.management.base import CommandError

from integrations.sandbox.models import SandboxOrganization


def organization_from_arg(ref: str) -> SandboxOrganization:
    lookup = {"pk": int(ref)} if ref.isdigit() else {"name": ref}
    try:
        return SandboxOrganization.objects.get(**lookup)
    except SandboxOrganization.DoesNotExist as exc:
        raise CommandError(f"No sandbox organisation with id or name {ref!r}.") from exc
    except SandboxOrganization.MultipleObjectsReturned as exc:
        raise CommandError(f"Several sandbox organisations are named {ref!r}; use the id.") from exc
