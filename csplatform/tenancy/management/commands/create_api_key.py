from django.core.management.base import BaseCommand, CommandError

from csplatform.tenancy.models import Tenant
from csplatform.tenancy.rls import tenant_context
from csplatform.tenancy.services import InvalidScopes, api_key_create


class Command(BaseCommand):
    help = "Create an API key for a tenant. The key is printed once, as the last line."

    def add_arguments(self, parser):
        parser.add_argument("tenant_slug")
        parser.add_argument("--name", required=True)
        parser.add_argument("--scopes", default="read", help="Comma-separated: read,write,ingest")

    def handle(self, *args, tenant_slug, name, scopes, **options):
        tenant = Tenant.objects.filter(slug=tenant_slug).first()
        if tenant is None:
            raise CommandError(f"No tenant with slug {tenant_slug!r}.")
        try:
            with tenant_context(tenant):
                api_key, raw_key = api_key_create(tenant=tenant, name=name, scopes=scopes.split(","))
        except InvalidScopes as exc:
            raise CommandError(str(exc)) from exc
        self.stderr.write(f"Created API key {api_key.prefix}… for {tenant.slug} with scopes {', '.join(api_key.scopes)}.")
        self.stdout.write(raw_key)
