from django.core.management.base import BaseCommand, CommandError

from csplatform import pipeline
from csplatform.tenancy.models import Tenant
from csplatform.tenancy.rls import tenant_context


class Command(BaseCommand):
    help = "Run the pipeline (metrics, health, lifecycle) over a tenant's dirty accounts, or all with --all."

    def add_arguments(self, parser):
        parser.add_argument("tenant_slug")
        parser.add_argument("--all", action="store_true", help="Recompute every account, not only the dirty ones.")
        parser.add_argument(
            "--chunk-size", type=int, help="Accounts per chunk (CSP_PIPELINE_CHUNK_SIZE); each commits on its own."
        )

    def handle(self, *args, tenant_slug, all, chunk_size, **options):
        tenant = Tenant.objects.filter(slug=tenant_slug).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {tenant_slug!r}.")
        with tenant_context(tenant):
            if all:
                pipeline.mark_all_dirty(tenant=tenant)
            totals = pipeline.recompute_dirty(tenant=tenant, chunk_size=chunk_size)
        self.stdout.write(f"Recomputed {totals['accounts']} accounts of {tenant.slug}; {totals['moved']} changed stage.")
