from django.core.management.base import BaseCommand, CommandError

from csplatform.tenancy.models import Tenant
from csplatform.tenancy.rls import tenant_context
from health.services import health_backfill


class Command(BaseCommand):
    help = (
        "Recompute a tenant's daily health snapshots for the past N days from the usage rollups, "
        "e.g. after seeding demo data or changing a scorecard."
    )

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="The tenant's slug.")
        parser.add_argument("--days", type=int, default=90, help="How many days back, today included (default 90).")

    def handle(self, *args, tenant, days, **options):
        if not 1 <= days <= 730:
            raise CommandError("--days must be between 1 and 730.")
        found = Tenant.objects.filter(slug=tenant).first()
        if found is None:
            raise CommandError(f"No tenant with slug {tenant!r}.")
        with tenant_context(found):
            written = health_backfill(tenant=found, days=days)
        self.stdout.write(f"Wrote {written} health snapshots over {days} days for {found.slug}.")
