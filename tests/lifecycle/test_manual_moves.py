import pytest
from django.core.exceptions import ValidationError

from lifecycle.models import AccountStage, StageTransition, TransitionKind
from lifecycle.services import account_move_stage, account_renew, lifecycle_advance, stages_apply_template
from tests.factories import AccountFactory


def test_a_manual_move_goes_backwards_and_records_reason_user_and_explanation(tenant, alice, lifecycle_stages):
    account = AccountFactory(tenant=tenant, mrr=2000)
    lifecycle_advance(tenant=tenant, account_ids=[account.pk])

    transition = account_move_stage(
        tenant=tenant, account=account, to_stage=lifecycle_stages["paying"], actor=alice, reason="Downgrade agreed"
    )

    assert AccountStage.objects.for_tenant(tenant).get(account=account).stage.key == "paying"
    stored = StageTransition.objects.for_tenant(tenant).get(pk=transition.pk)
    assert (stored.from_key, stored.to_key, stored.kind) == ("growing", "paying", TransitionKind.MANUAL)
    assert (stored.by_user, stored.reason) == (alice, "Downgrade agreed")
    assert stored.explanation["passed"] is True


def test_a_manual_move_needs_a_reason(tenant, alice, lifecycle_stages):
    account = AccountFactory(tenant=tenant)

    with pytest.raises(ValidationError) as excinfo:
        account_move_stage(
            tenant=tenant, account=account, to_stage=lifecycle_stages["paying"], actor=alice, reason="  "
        )

    assert "reason" in excinfo.value.message_dict
    assert not StageTransition.objects.for_tenant(tenant).exists()


def test_a_manual_move_into_the_current_stage_is_refused(tenant, alice, lifecycle_stages):
    account = AccountFactory(tenant=tenant, mrr=0)
    lifecycle_advance(tenant=tenant, account_ids=[account.pk])

    with pytest.raises(ValidationError):
        account_move_stage(tenant=tenant, account=account, to_stage=lifecycle_stages["trial"], actor=alice, reason="x")


def test_a_renewed_account_re_enters_the_cycle_at_the_renewal_stages_cycle_to(tenant, alice):
    stages = {
        stage.key: stage for stage in stages_apply_template(tenant=tenant, template_key="renewal_cycle", actor=alice)
    }
    account = AccountFactory(tenant=tenant)
    account_move_stage(tenant=tenant, account=account, to_stage=stages["renewal"], actor=alice, reason="Renewal due")

    transition = account_renew(tenant=tenant, account=account, actor=alice)

    assert (transition.from_key, transition.to_key, transition.kind) == ("renewal", "engagement", TransitionKind.CYCLE)
    assert AccountStage.objects.for_tenant(tenant).get(account=account).stage == stages["engagement"]


def test_renewing_an_account_outside_a_renewal_stage_is_refused(tenant, alice, lifecycle_stages):
    account = AccountFactory(tenant=tenant, mrr=0)
    lifecycle_advance(tenant=tenant, account_ids=[account.pk])

    with pytest.raises(ValidationError):
        account_renew(tenant=tenant, account=account, actor=alice)
