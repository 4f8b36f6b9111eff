from django.core.management.base import BaseCommand, CommandError

from csplatform.tenancy.export import tenant_export_lines
from csplatform.tenancy.models import Tenant


class Command(BaseCommand):
    help = "Write all of a tenant's data as JSON lines (to stdout, or to --output)."

    def add_arguments(self, parser):
        parser.add_argument("slug")
        parser.add_argument("--output", help="File to write; stdout when omitted.")

    def handle(self, *args, slug, output=None, **options):
        tenant = Tenant.objects.filter(slug=slug).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {slug!r}.")
        if output:
            with open(output, "w", encoding="utf-8") as out:
                out.writelines(tenant_export_lines(tenant))
        else:
            for line in tenant_export_lines(tenant):
                self.stdout.write(line, ending="")
