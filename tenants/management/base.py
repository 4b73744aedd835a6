"""Shared pieces of management commands: tenant lookup and reading secrets from stdin."""

from __future__ import annotations

import getpass
import sys

from django.core.management.base import BaseCommand, CommandError

from tenants import selectors
from tenants.models import Tenant
from tenants.services import Actor

CLI = Actor(via="cli")


def tenant_from_arg(ref: str) -> Tenant:
    try:
        return selectors.tenant_get_by_ref(ref=ref)
    except Tenant.DoesNotExist as exc:
        raise CommandError(f"No tenant with slug or public id {ref!r}.") from exc


def read_secret_from_stdin(stdin, prompt: str) -> str:
    """Secrets come from stdin (never argv, which leaks into shell history and `ps`)."""
    value = getpass.getpass(prompt) if stdin is sys.stdin and sys.stdin.isatty() else stdin.read()
    value = value.strip()
    if not value:
        raise CommandError("No secret on standard input.")
    return value


class StdinCommand(BaseCommand):
    """A command that may read a secret from stdin; tests pass ``stdin=`` to call_command."""

    stealth_options = ("stdin",)

    def execute(self, *args, **options):
        self.stdin = options.pop("stdin", sys.stdin)
        return super().execute(*args, **options)


class TenantCommand(StdinCommand):
    """A command that acts on one tenant, named by slug or public id."""

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="Tenant slug or public id")
