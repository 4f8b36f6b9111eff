"""A one-click NPS answer is a usage event like any other: it reaches the metrics and the health score."""

import pytest

from csplatform import pipeline
from csplatform.rules.models import AccountMetrics
from health.defaults import scorecards_apply_defaults
from health.models import HealthScore
from lifecycle.services import account_move_stage
from playbooks.models import StepRun
from playbooks.nps import nps_token
from playbooks.services import playbook_create, runs_start

pytestmark = pytest.mark.django_db


def test_an_nps_answer_feeds_the_nps_metric_and_the_mature_scorecards_measure(
    tenant, alice, stages, customer, client
):
    scorecards_apply_defaults(tenant=tenant)
    account_move_stage(tenant=tenant, account=customer, to_stage=stages["renewal"], actor=alice, reason="Renewing")
    playbook = playbook_create(
        tenant=tenant, actor=None, key="nps", name="NPS", trigger_type="manual", steps=[{"kind": "nps_survey"}]
    )
    runs_start(tenant=tenant, playbook=playbook, account_ids=[customer.pk])
    step_run = StepRun.objects.for_tenant(tenant).get(run__account=customer)
    contact = customer.contacts.first()
    token = nps_token(tenant=tenant, contact=contact, score=9, step_run=step_run, expires_days=14)

    assert client.get(f"/nps/{token}/").status_code == 200
    pipeline.recompute_dirty(tenant=tenant)

    assert AccountMetrics.objects.for_tenant(tenant).get(account=customer).values["nps_avg_90d"] == 9
    breakdown = HealthScore.objects.for_tenant(tenant).get(account=customer).breakdown
    (measure,) = [entry for entry in breakdown if entry["source"] == "nps_avg_90d"]
    assert (measure["value"], measure["points"], measure["skipped"]) == (9, 100, False)
