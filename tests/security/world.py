"""Tenant "A" with at least one row of every kind, built through the public services.

Every name, key and external id that A owns contains MARKER, so a response
that shows one of them to another tenant is easy to spot. The isolation
sweep builds a second world like it, under another marker, for tenant B.
"""

import datetime as dt

from django.apps import apps
from django.test import override_settings
from django.utils import timezone

from alerts.services import alert_raise, alert_rule_create, segment_create, segments_refresh
from alerts.webhooks import webhook_emit, webhook_subscription_create
from csplatform import pipeline
from csplatform.customers.services import account_upsert, contact_upsert, note_add
from csplatform.rules.services import metric_definition_create
from csplatform.tenancy.models import Role, TenantModel
from csplatform.tenancy.services import api_key_create
from health.services import (
    health_override_set,
    health_settings_update,
    scorecard_create,
    scorecard_version_create,
)
from lifecycle.services import account_move_stage, stage_create
from playbooks.runner import steps_run_due
from playbooks.services import playbook_create, run_start
from tests.conftest import make_api_client
from tests.factories import MembershipFactory, TenantFactory, UserFactory

MARKER = "zqxa"


def tenant_models():
    return sorted((m for m in apps.get_models() if issubclass(m, TenantModel)), key=lambda m: m._meta.label)


def thresholds(source, bad, good):
    return {"source": source, "weight": 1, "missing": "skip", "mapping": {"type": "thresholds", "bad": bad, "good": good}}


def build_world(marker=MARKER):
    """Create a tenant (A, unless another `marker` names it) and one of everything it can own.

    Returns a dict of the main objects; every name, key and external id in it contains `marker`.

    1. Tenant, admin member, API key.
    2. Configuration: a metric, two stages, a scorecard with a second version.
    3. Data: an account, a contact, usage events through the batch API, a note.
    4. The pipeline: metrics, health scores, stage transitions; then a manual
       move and a health override for the rows those leave behind.
    5. A segment with its member, an alert rule and an alert, a webhook
       subscription with a delivery, a playbook run that created a task.
    """
    slug = f"{marker}-corp"
    tenant = TenantFactory(slug=slug, name=f"{marker.title()} Corporation")
    admin = UserFactory(email=f"admin-{slug}@{marker}.example", name=f"{marker.title()} Admin")
    MembershipFactory(tenant=tenant, user=admin, role=Role.ADMIN)
    api_key_create(tenant=tenant, name=f"{marker} key", scopes=["read"])

    metric = metric_definition_create(
        tenant=tenant,
        actor=admin,
        fields={"key": f"{marker}_logins", "label": f"{marker} logins", "event_names": ["login"], "window_days": 30},
    )
    trial = stage_create(tenant=tenant, actor=admin, key=f"{marker}_trial", name=f"{marker.title()} Trial")
    paying = stage_create(
        tenant=tenant,
        actor=admin,
        key=f"{marker}_paying",
        name=f"{marker.title()} Paying",
        entry_criteria_text="account.mrr > 0",
    )
    scorecard = scorecard_create(
        tenant=tenant, actor=admin, name=f"{marker.title()} Card", measures=[thresholds(f"{marker}_logins", 0, 20)]
    )
    health_settings_update(tenant=tenant, actor=admin, red_below=30, green_from=60)
    scorecard_version_create(
        tenant=tenant, scorecard=scorecard, actor=admin, measures=[thresholds(f"{marker}_logins", 0, 10)], note=f"{marker} thresholds"
    )

    account, _ = account_upsert(
        tenant=tenant,
        external_id=f"acct-{marker}-1",
        fields={"name": f"{marker.title()} Holdings", "owner": admin, "mrr": 700, "plan": "pro"},
    )
    contact, _ = contact_upsert(
        tenant=tenant,
        external_id=f"contact-{marker}-1",
        account=account,
        fields={"email": f"person-{marker}@customer.example", "name": f"{marker.title()} Person"},
    )
    note_add(tenant=tenant, account=account, author=admin, body=f"{marker.title()} note", key=f"{marker}-note")
    client = make_api_client(tenant, scopes=["ingest"])
    now = timezone.now()
    events = [
        {
            "message_id": f"msg-{marker}-{n}",
            "account": account.external_id,
            "contact": contact.external_id,
            "event": "login",
            "timestamp": (now - dt.timedelta(days=n)).isoformat(),
            "properties": {"seats": n + 1},
        }
        for n in range(3)
    ]
    response = client.post("/api/v1/events/batch", {"events": events}, format="json")
    assert response.status_code in (200, 201, 202), response.content

    pipeline.recompute_accounts(tenant=tenant, account_ids=[account.pk])
    account_move_stage(tenant=tenant, account=account, to_stage=trial, actor=admin, reason=f"{marker} manual move")
    health_override_set(tenant=tenant, account=account, actor=admin, reason=f"{marker} override", colour="green")

    segment = segment_create(
        tenant=tenant, actor=admin, key=f"{marker}_paying", name=f"{marker.title()} Segment", criteria_text="account.mrr > 0"
    )
    segments_refresh(tenant=tenant, account_ids=[account.pk], segments=[segment])
    alert_rule = alert_rule_create(
        tenant=tenant, actor=admin, key=f"{marker}_rule", name=f"{marker.title()} Rule", condition_text="account.mrr > 0"
    )
    alert_raise(tenant=tenant, account=account, title=f"{marker.title()} alert", severity="warning")
    # A loopback target: the SSRF guard resolves hosts, and no request is sent here.
    with override_settings(CSP_WEBHOOK_ALLOW_PRIVATE=True):
        webhook_subscription_create(
            tenant=tenant, actor=admin, url=f"http://127.0.0.1:9/{marker}-hook", event_types=["alert.opened"]
        )
    webhook_emit(tenant=tenant, event_type="alert.opened", payload={"note": marker}, idempotency_key=f"{marker}-1")
    playbook = playbook_create(
        tenant=tenant,
        actor=admin,
        key=f"{marker}_playbook",
        name=f"{marker.title()} Playbook",
        trigger_type="manual",
        steps=[{"kind": "create_task", "config": {"title": f"{marker.title()} task"}}],
        enabled=True,
    )
    run_start(tenant=tenant, playbook=playbook, account=account, actor=admin)
    steps_run_due()

    account.refresh_from_db()
    return {
        "tenant": tenant,
        "admin": admin,
        "account": account,
        "contact": contact,
        "stages": [trial, paying],
        "scorecard": scorecard,
        "metric": metric,
        "segment": segment,
        "alert_rule": alert_rule,
        "playbook": playbook,
    }


def tenant_rows(tenant):
    """Every row the tenant owns, per model label, as plain values (for before/after comparisons)."""
    return {
        model._meta.label: sorted(
            (tuple(sorted((k, repr(v)) for k, v in row.items())) for row in model.objects.for_tenant(tenant).values()),
        )
        for model in tenant_models()
    }


def row_counts(tenant):
    return {model._meta.label: model.objects.for_tenant(tenant).count() for model in tenant_models()}
