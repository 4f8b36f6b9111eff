"""`GET /metrics`: what an operator graphs and alerts on, in Prometheus's text format.

Each scrape reads the database (one query per backlog, two per tenant with
changes waiting), so every web process answers alike whichever worker did
the work. The endpoint is off (404) unless CSP_METRICS_TOKEN is set; a
scrape sends that token as a bearer token.

A backlog's lag is how long its most overdue item has been due: a runner or
sender that stops shows it growing, while a steady one keeps it near zero.
"""

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Min
from django.http import Http404, HttpResponse
from django.utils import timezone
from django.utils.crypto import constant_time_compare
from django.views.decorators.cache import never_cache
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from alerts.models import DeliveryStatus, Notification, WebhookDelivery
from csplatform.tenancy.models import Tenant
from csplatform.tenancy.rls import dangerously_bypass_rls, tenant_context
from playbooks.models import StepRun, StepRunStatus

from .pipeline import pipeline_freshness, tenants_with_dirty_accounts

# (metric name stem, what is due, when each item fell due): the queues that workers drain.
BACKLOGS = (
    (
        "step_runs",
        "Playbook steps due to run",
        lambda: StepRun.objects.dangerously_all_tenants().filter(status=StepRunStatus.PENDING),
        "due_at",
    ),
    (
        "webhook_deliveries",
        "Webhook deliveries due to be sent",
        lambda: WebhookDelivery.objects.dangerously_all_tenants().filter(status=DeliveryStatus.PENDING),
        "next_attempt_at",
    ),
    (
        "notifications",
        "Alert notifications (email, Slack) due to be sent",
        lambda: Notification.objects.dangerously_all_tenants().filter(status=DeliveryStatus.PENDING),
        "next_attempt_at",
    ),
)


class PlatformCollector:
    """The platform's gauges, read when Prometheus asks."""

    def collect(self):
        now = timezone.now()
        with dangerously_bypass_rls():
            yield from self._backlogs(now)
            yield from self._freshness()

    def _backlogs(self, now):
        for stem, what, pending, due_field in BACKLOGS:
            due = pending().filter(**{f"{due_field}__lte": now}).aggregate(n=Count("pk"), oldest=Min(due_field))
            count = GaugeMetricFamily(f"csp_{stem}_due", f"{what}.")
            count.add_metric([], due["n"])
            lag = GaugeMetricFamily(
                f"csp_{stem}_due_lag_seconds", f"How long the most overdue of the {what.lower()} has waited."
            )
            lag.add_metric([], (now - due["oldest"]).total_seconds() if due["oldest"] else 0.0)
            yield count
            yield lag

    def _freshness(self):
        waiting = GaugeMetricFamily(
            "csp_accounts_waiting", "Accounts changed since the pipeline last recomputed them.", labels=["tenant"]
        )
        behind = GaugeMetricFamily(
            "csp_results_behind_seconds",
            "How old the oldest change not yet in a tenant's results (metrics, health, stages, alerts) may be.",
            labels=["tenant"],
        )
        # Only tenants with changes waiting cost queries; the others are current.
        with_changes = set(tenants_with_dirty_accounts())
        for tenant in Tenant.objects.order_by("slug"):
            accounts, seconds = 0, 0.0
            if tenant.pk in with_changes:
                with tenant_context(tenant):
                    freshness = pipeline_freshness(tenant=tenant)
                accounts, seconds = freshness.waiting_accounts, freshness.behind_seconds
            waiting.add_metric([tenant.slug], accounts)
            behind.add_metric([tenant.slug], seconds)
        yield waiting
        yield behind


@never_cache
def metrics(request):
    token = settings.CSP_METRICS_TOKEN
    if not token:
        raise Http404("Metrics are off: set CSP_METRICS_TOKEN.")
    if not constant_time_compare(request.headers.get("Authorization", ""), f"Bearer {token}"):
        return HttpResponse("A bearer token is required.", status=401, headers={"WWW-Authenticate": "Bearer"})
    registry = CollectorRegistry(auto_describe=False)
    registry.register(PlatformCollector())
    try:
        exposition = generate_latest(registry)
    except DatabaseError as exc:
        # A failed scrape is what Prometheus alerts on; the answer says why.
        return HttpResponse(f"The database did not answer: {exc.__class__.__name__}", status=503)
    return HttpResponse(exposition, content_type=CONTENT_TYPE_LATEST)
