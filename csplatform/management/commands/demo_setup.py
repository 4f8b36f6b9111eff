import time

from django.core.management.base import BaseCommand, CommandError

from alerts.library import starter_alerts_install
from csplatform import pipeline
from csplatform.customers.demo import champions_leave
from csplatform.customers.models import Account
from csplatform.tenancy.models import Tenant
from csplatform.tenancy.rls import tenant_context
from health.defaults import scorecards_apply_defaults
from lifecycle.models import Stage
from lifecycle.services import stages_apply_template
from playbooks.backfill import history_replay, team_work_replay
from playbooks.services import playbook_templates_install

DEMO_TEMPLATE = "onboarding_to_renewal"
# The template's stages where the starter rule "No champion" looks for one.
CHAMPION_WATCHED_STAGES = ["adopting", "renewal"]


class Command(BaseCommand):
    help = (
        "Give the demo tenant its lifecycle (seed 001's stages), health scorecards and onboarding playbook, "
        "replay its past days (stage moves, health history, alerts, playbook runs at their past times, "
        "and the tasks and alerts its team dealt with), "
        "let today's news arrive (a few champions left their companies), "
        "then run the pipeline over every account for today."
    )

    def add_arguments(self, parser):
        parser.add_argument("--tenant", default="demo")
        parser.add_argument("--days", type=int, default=90)

    def handle(self, *args, tenant, days, **options):
        if not 1 <= days <= 730:
            raise CommandError("--days must be between 1 and 730.")
        tenant_obj = Tenant.objects.filter(slug=tenant).first()
        if tenant_obj is None:
            raise CommandError(f"No tenant with slug {tenant!r}; run seed_demo first.")
        with tenant_context(tenant_obj):
            self.set_up(tenant_obj, days)

    def set_up(self, tenant, days):
        # A tenant with stages has been set up (or configured by hand): leave it as it is.
        if Stage.objects.for_tenant(tenant).exists():
            self.stdout.write(f"Tenant {tenant.slug!r} already has stages; nothing to do.")
            return
        started = time.monotonic()
        stages_apply_template(tenant=tenant, template_key=DEMO_TEMPLATE, actor=None)
        playbook_templates_install(tenant=tenant, keys=["onboarding_welcome"])
        scorecards_apply_defaults(tenant=tenant)
        starter_alerts_install(tenant=tenant)
        replay = history_replay(tenant=tenant, days=days)
        team = team_work_replay(tenant=tenant)
        watched = Account.objects.for_tenant(tenant).filter(lifecycle__stage__key__in=CHAMPION_WATCHED_STAGES)
        champions_left = champions_leave(tenant=tenant, accounts=watched.order_by("pk"))
        pipeline.mark_all_dirty(tenant=tenant)
        totals = pipeline.recompute_dirty(tenant=tenant)
        self.stdout.write(
            f"Demo lifecycle ready in {time.monotonic() - started:.1f}s: {days} days replayed "
            f"({replay['steps_executed']} playbook steps executed at their past times; the team completed "
            f"{team['tasks_completed']} tasks, acknowledged {team['alerts_acknowledged']} alerts, wrote "
            f"{team['notes_written']} notes and nudged the owners of {team['accounts_nudged']} accounts), "
            f"{champions_left} champions left their companies today, "
            f"{totals['accounts']} accounts recomputed for today, {totals['moved']} moved in a stage today."
        )
