from django.core.management.base import BaseCommand, CommandError

from csplatform.pipeline import pipeline_freshness
from csplatform.tenancy.models import Tenant
from csplatform.tenancy.rls import tenant_context


class Command(BaseCommand):
    help = "How far each tenant's computed results are behind its data: accounts waiting, seconds behind, last pass."

    def add_arguments(self, parser):
        parser.add_argument("tenant_slugs", nargs="*", help="Only these tenants (default: every tenant).")
        parser.add_argument(
            "--fail-behind",
            type=float,
            metavar="SECONDS",
            help="Exit with an error naming the tenants further behind than this: a check for monitoring.",
        )

    def handle(self, *args, tenant_slugs, fail_behind, **options):
        tenants = Tenant.objects.order_by("slug")
        if tenant_slugs:
            tenants = tenants.filter(slug__in=tenant_slugs)
            unknown = set(tenant_slugs) - set(tenants.values_list("slug", flat=True))
            if unknown:
                raise CommandError(f"No tenant with slug {', '.join(sorted(map(repr, unknown)))}.")
        self.stdout.write(f"{'tenant':<24} {'waiting':>8} {'behind':>10}  last pass")
        late = []
        for tenant in tenants:
            with tenant_context(tenant):
                freshness = pipeline_freshness(tenant=tenant)
            behind = f"{freshness.behind_seconds:.1f} s"
            last = freshness.recent_passes[0] if freshness.recent_passes else None
            described = (
                "none" if last is None else
                f"{last.opened_at:%Y-%m-%d %H:%M:%S} UTC, {last.seconds:.1f} s, {last.accounts} accounts, {last.status}"
            )
            self.stdout.write(f"{tenant.slug:<24} {freshness.waiting_accounts:>8} {behind:>10}  {described}")
            if fail_behind is not None and freshness.behind_seconds > fail_behind:
                late.append(tenant.slug)
        if late:
            raise CommandError(f"Further behind than {fail_behind:g} s: {', '.join(late)}.")
