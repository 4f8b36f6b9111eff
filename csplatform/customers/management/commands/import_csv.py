from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from csplatform.customers.imports import KINDS, CsvImportError, csv_import
from csplatform.tenancy.models import Tenant
from csplatform.tenancy.rls import tenant_context


class Command(BaseCommand):
    help = "Import accounts or contacts from a CSV file into a tenant, all rows or none."

    def add_arguments(self, parser):
        parser.add_argument("tenant", help="The tenant's slug.")
        parser.add_argument("kind", choices=sorted(KINDS))
        parser.add_argument("file", type=Path, help="A UTF-8 CSV file with a header row.")

    def handle(self, *args, tenant, kind, file, **options):
        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"No tenant with the slug {tenant!r}.")
        try:
            content = file.read_bytes()
        except OSError as exc:
            raise CommandError(f"Cannot read {file}: {exc.strerror}.") from exc
        try:
            with tenant_context(tenant_obj):
                result = csv_import(tenant=tenant_obj, kind=kind, content=content)
        except CsvImportError as exc:
            for problem in exc.problems:
                column = f", column {problem['column']}" if problem["column"] else ""
                self.stderr.write(f"row {problem['row']}{column}: {problem['message']}")
            raise CommandError(exc.message) from exc
        self.stdout.write(f"Imported {result.rows} {kind}: {result.created} created, {result.updated} updated.")
