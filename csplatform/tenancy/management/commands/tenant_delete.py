from django.core.management.base import BaseCommand, CommandError

from csplatform.tenancy.export import tenant_delete
from csplatform.tenancy.models import Tenant


class Command(BaseCommand):
    help = "Delete a tenant and every row it owns. Irreversible: export it first (tenant_export)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--yes", action="store_true", help="Confirm the deletion.")

    def handle(self, *args, slug, yes=False, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {slug!r}.")
        if not yes:
            raise CommandError(f"This deletes tenant {slug!r} and all its data. Run again with --yes to confirm.")
        deleted = tenant_delete(tenant=tenant)
        for label, count in sorted(deleted.items()):
            self.stdout.write(f"{label}: {count}")
        self.stdout.write(self.style.SUCCESS(f"Deleted tenant {slug!r}: {sum(deleted.values())} rows."))
