from django.core.management.base import BaseCommand, CommandError

from sync.ops.retention import KINDS, data_purge
from tenants.management.base import CLI, tenant_from_arg


class Command(BaseCommand):
    help = (
        "Purge what the retention settings allow: bodies of handled webhook events and rejected "
        "deliveries, attempts of finished items, resolved dead letters (defaults 30/30/90 days, "
        "overridable per tenant). Deletes in bounded batches; --dry-run only counts."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", help="Only this tenant (slug or public id); default: every tenant")
        parser.add_argument("--dry-run", action="store_true", help="Count what would go; change nothing")
        parser.add_argument("--batch-size", type=int, default=None, help="Rows per batch (PURGE_BATCH_SIZE)")
        parser.add_argument(
            "--max-batches", type=int, default=None, help="Batches per kind and tenant (PURGE_MAX_BATCHES)"
        )

    def handle(self, *args, **options):
        for name in ("batch_size", "max_batches"):
            if options[name] is not None and options[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1.")
        tenants = [tenant_from_arg(options["tenant"])] if options["tenant"] else None
        result = data_purge(
            tenants=tenants,
            dry_run=options["dry_run"],
            batch_size=options["batch_size"],
            max_batches=options["max_batches"],
            actor=CLI,
        )
        verb = "would purge" if result.dry_run else "purged"
        self.stdout.write(f"{'tenant':<24} {'kind':<20} {verb}")
        for slug, counts in result.counts.items():
            for kind in KINDS:
                more = "  (more left for the next run)" if (slug, kind) in result.unfinished else ""
                self.stdout.write(f"{slug:<24} {kind:<20} {counts[kind]}{more}")
        self.stdout.write(f"Total {verb}: {result.total}")
