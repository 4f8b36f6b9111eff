import os
import time

from django.core.management.base import BaseCommand, CommandError

from csplatform.customers.demo import DemoTenantExists, demo_password, demo_seed
from csplatform.tenancy.models import Tenant
from csplatform.tenancy.rls import dangerously_bypass_rls


class Command(BaseCommand):
    help = "Create the demo tenant (and a small second tenant) with realistic, deterministic data."

    def add_arguments(self, parser):
        parser.add_argument("--seed", type=int, default=1, help="Random seed; the same seed gives the same data.")
        parser.add_argument("--accounts", type=int, default=300, help="Accounts in the demo tenant (default 300).")
        parser.add_argument("--if-empty", action="store_true", help="Do nothing if the demo tenant already exists.")

    def handle(self, *args, seed, accounts, if_empty, **options):
        if accounts < 1:
            raise CommandError("--accounts must be at least 1.")
        if if_empty and Tenant.objects.filter(slug="demo").exists():
            self.stdout.write("Tenant 'demo' already exists; nothing to do.")
            return
        started = time.monotonic()
        try:
            # The demo spans two tenants, so it writes with row-level security bypassed.
            with dangerously_bypass_rls():
                result = demo_seed(seed=seed, accounts=accounts)
        except DemoTenantExists as exc:
            raise CommandError(f"{exc} Use --if-empty to skip it, or delete the tenant to seed again.") from exc
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        tenants = ", ".join(f"{t.slug} ({t.name})" for t in result.tenants)
        self.stdout.write(
            f"Created {tenants}: {result.accounts} accounts, {result.events} events "
            f"in {time.monotonic() - started:.1f}s."
        )
        self.stdout.write(f"Sign in at http://127.0.0.1:{os.environ.get('PORT', '8000')}/login/ with:")
        for email in result.sign_in:
            self.stdout.write(f"  {email} / {demo_password()}")
