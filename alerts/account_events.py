"""Webhook events about accounts that the pipeline changed: stage moves and health colour changes."""

from health.models import HealthScore
from lifecycle.models import StageTransition

from .webhooks import account_payload, webhooks_emit


def _stage_changed(transition):
    payload = {
        "account": account_payload(transition.account),
        "from_stage": transition.from_key or None,
        "to_stage": transition.to_key,
        "kind": transition.kind,
        "reason": transition.reason,
        "at": transition.at.isoformat(),
    }
    return payload, f"transition:{transition.pk}"


def _health_changed(health):
    payload = {
        "account": account_payload(health.account),
        "score": health.score,
        "colour": health.colour,
        "computed_at": health.computed_at.isoformat() if health.computed_at else None,
    }
    return payload, f"health:{health.account_id}:{health.colour}:{health.computed_at:%Y-%m-%d}"


def account_changes_emit(*, tenant, moved_ids, colour_changed_ids, since):
    """Emit account.stage_changed for each transition recorded since `since`, and
    account.health_changed for each account whose colour changed.

    The idempotency keys (the transition, the account's colour on the day)
    make a second pipeline run over the same changes send nothing new.
    """
    if moved_ids:
        transitions = (
            StageTransition.objects.for_tenant(tenant)
            .filter(account_id__in=list(moved_ids), at__gte=since)
            .select_related("account")
            .order_by("at", "pk")
        )
        webhooks_emit(tenant=tenant, event_type="account.stage_changed", rows=transitions, event=_stage_changed)
    if colour_changed_ids:
        scores = HealthScore.objects.for_tenant(tenant).filter(account_id__in=list(colour_changed_ids))
        webhooks_emit(
            tenant=tenant,
            event_type="account.health_changed",
            rows=scores.select_related("account"),
            event=_health_changed,
        )
