import pytest
from django.core.exceptions import ValidationError

from csplatform.rules import load_criteria
from csplatform.tenancy.models import AuditLogEntry
from lifecycle.models import AccountStage, Stage, StageTransition
from lifecycle.services import account_move_stage, stage_create, stages_apply_template
from lifecycle.templates import TEMPLATES
from tests.factories import AccountFactory

SEED_STAGE_NAMES = {
    "success_lifecycle": ["Onboarding", "Adoption", "Usage", "Value realization", "Advocacy", "Churned"],
    "onboarding_to_renewal": ["Onboarding", "Adopting", "Expanding", "Renewal", "Churned"],
    "implementation_to_mature_adoption": [
        "Pre-onboarding",
        "Onboarding",
        "Implementation",
        "Early adoption",
        "Mature adoption",
        "Churned",
    ],
    "renewal_cycle": [
        "Awareness and education",
        "Conversion",
        "Purchase and activation",
        "Ongoing engagement and support",
        "Renewal and advocacy",
        "Churned",
    ],
    "eight_stages": [
        "Outreach",
        "Connection",
        "Conversion",
        "Onboarding",
        "Experience",
        "Value",
        "Retention",
        "Expansion",
        "Churned",
    ],
}


def test_there_is_a_template_for_each_described_lifecycle_each_ending_with_churned_entered_by_hand():
    assert {template.key: [s.name for s in template.stages] for template in TEMPLATES} == SEED_STAGE_NAMES
    for template in TEMPLATES:
        churned = template.stages[-1]
        assert (churned.is_terminal, churned.outcome, churned.criteria) == (True, "churned", "")


@pytest.mark.parametrize("template", TEMPLATES, ids=lambda t: t.key)
def test_every_template_applies_and_its_criteria_compile(tenant, alice, template):
    stages = stages_apply_template(tenant=tenant, template_key=template.key, actor=alice)

    stored = list(Stage.objects.for_tenant(tenant).order_by("position"))
    assert stored == stages
    assert [stage.name for stage in stored] == SEED_STAGE_NAMES[template.key]
    assert [stage.is_initial for stage in stored] == [True] + [False] * (len(stored) - 1)
    for stage, spec in zip(stored, template.stages, strict=True):
        assert stage.description and stage.colour.startswith("#")
        if spec.criteria:
            criteria = load_criteria(stage.entry_criteria, tenant=tenant)
            assert criteria.text == stage.entry_criteria_text
        else:
            assert stage.entry_criteria is None


def test_the_renewal_cycle_returns_renewed_accounts_to_ongoing_engagement(tenant, alice):
    stages = {s.key: s for s in stages_apply_template(tenant=tenant, template_key="renewal_cycle", actor=alice)}

    assert stages["renewal"].cycle_to == stages["engagement"]
    assert stages["churned"].is_terminal and stages["churned"].outcome == "churned"


@pytest.mark.parametrize("template_key", ["onboarding_to_renewal", "renewal_cycle"])
def test_a_renewal_stage_is_entered_by_date_from_any_earlier_stage(tenant, alice, template_key):
    stages = stages_apply_template(tenant=tenant, template_key=template_key, actor=alice)

    assert [stage.key for stage in stages if stage.entered_from_any_earlier] == ["renewal"]


def test_applying_a_template_keeps_accounts_in_stages_with_the_same_key(tenant, alice):
    stages_apply_template(tenant=tenant, template_key="success_lifecycle", actor=alice)
    onboarding = Stage.objects.for_tenant(tenant).get(key="onboarding")
    account = AccountFactory(tenant=tenant)
    account_move_stage(tenant=tenant, account=account, to_stage=onboarding, actor=alice, reason="Kick-off")

    stages_apply_template(tenant=tenant, template_key="onboarding_to_renewal", actor=alice)

    state = AccountStage.objects.for_tenant(tenant).get(account=account)
    assert state.stage_id == onboarding.pk
    assert set(Stage.objects.for_tenant(tenant).values_list("key", flat=True)) == {
        "onboarding",
        "adopting",
        "expanding",
        "renewal",
        "churned",
    }


def test_applying_a_template_refuses_when_accounts_sit_in_stages_that_would_vanish(tenant, alice):
    stages_apply_template(tenant=tenant, template_key="success_lifecycle", actor=alice)
    usage = Stage.objects.for_tenant(tenant).get(key="usage")
    account = AccountFactory(tenant=tenant)
    account_move_stage(tenant=tenant, account=account, to_stage=usage, actor=alice, reason="Live")

    with pytest.raises(ValidationError) as excinfo:
        stages_apply_template(tenant=tenant, template_key="onboarding_to_renewal", actor=alice)

    assert "usage (1 accounts)" in str(excinfo.value.message_dict["mapping"])
    assert Stage.objects.for_tenant(tenant).count() == 6


def test_applying_a_template_with_a_mapping_moves_the_accounts_and_records_why(tenant, alice):
    stages_apply_template(tenant=tenant, template_key="success_lifecycle", actor=alice)
    usage = Stage.objects.for_tenant(tenant).get(key="usage")
    account = AccountFactory(tenant=tenant)
    account_move_stage(tenant=tenant, account=account, to_stage=usage, actor=alice, reason="Live")

    stages_apply_template(
        tenant=tenant, template_key="onboarding_to_renewal", actor=alice, mapping={"usage": "adopting"}
    )

    assert AccountStage.objects.for_tenant(tenant).get(account=account).stage.key == "adopting"
    last = StageTransition.objects.for_tenant(tenant).filter(account=account).latest("id")
    assert (last.from_key, last.to_key, last.by_user) == ("usage", "adopting", alice)
    assert last.from_stage is None
    assert AuditLogEntry.objects.for_tenant(tenant).filter(action="stages.template_applied").count() == 2


def test_an_unknown_template_is_refused(tenant, alice):
    with pytest.raises(ValidationError):
        stages_apply_template(tenant=tenant, template_key="nope", actor=alice)


def test_the_first_stage_created_is_the_initial_one_and_only_one_stays_initial(tenant, alice):
    first = stage_create(tenant=tenant, actor=alice, key="a", name="A")
    second = stage_create(tenant=tenant, actor=alice, key="b", name="B", is_initial=True)

    first.refresh_from_db()
    assert (first.is_initial, second.is_initial) == (False, True)
