from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from csplatform import pipeline
from csplatform.tenancy.models import Tenant
from health.defaults import scorecards_apply_defaults
from lifecycle.models import Stage
from lifecycle.services import stages_apply_template
from playbooks.services import playbook_templates_install

DEMO_TEMPLATE = "onboarding_to_renewal"


class Command(BaseCommand):
    help = (
        "Give the demo tenant its lifecycle (seed 001's stages), health scorecards and onboarding playbook, "
        "backfill 90 days of health history, then run the pipeline over every account."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", default="demo")
        parser.add_argument("--days", type=int, default=90)

    def handle(self, *args, tenant, days, **options):
        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"No tenant with slug {tenant!r}; run seed_demo first.")
        if Stage.objects.for_tenant(tenant_obj).exists():
            self.stdout.write(f"Tenant {tenant!r} already has stages; nothing to do.")
            return
        stages_apply_template(tenant=tenant_obj, template_key=DEMO_TEMPLATE, actor=None)
        playbook_templates_install(tenant=tenant_obj, keys=["onboarding_welcome"])
        scorecards_apply_defaults(tenant=tenant_obj)
        call_command("health_backfill", tenant, "--days", str(days), stdout=self.stdout)
        pipeline.mark_all_dirty(tenant=tenant_obj)
        totals = pipeline.recompute_dirty(tenant=tenant_obj)
        self.stdout.write(
            f"Demo lifecycle ready: {totals['accounts']} accounts recomputed, {totals['moved']} placed or moved in a stage."
        )
