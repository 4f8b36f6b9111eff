"""Webhook events about accounts that the pipeline changed: stage moves and health colour changes."""

from health.models import HealthScore
from lifecycle.models import StageTransition

from .models import WebhookSubscription
from .webhooks import webhook_emit


def _subscribed(tenant, event_type):
    return any(
        event_type in subscription.event_types
        for subscription in WebhookSubscription.objects.for_tenant(tenant).filter(active=True)
    )


def _account(account):
    return {"id": account.pk, "external_id": account.external_id, "name": account.name}


def account_changes_emit(*, tenant, moved_ids, colour_changed_ids, since):
    """Emit account.stage_changed for each transition recorded since `since`, and
    account.health_changed for each account whose colour changed.

    The idempotency keys (the transition, the account's colour on the day)
    make a second pipeline run over the same changes send nothing new.
    """
    if moved_ids and _subscribed(tenant, "account.stage_changed"):
        transitions = (
            StageTransition.objects.for_tenant(tenant)
            .filter(account_id__in=list(moved_ids), at__gte=since)
            .select_related("account")
            .order_by("at", "pk")
        )
        for transition in transitions:
            webhook_emit(
                tenant=tenant,
                event_type="account.stage_changed",
                payload={
                    "account": _account(transition.account),
                    "from_stage": transition.from_key or None,
                    "to_stage": transition.to_key,
                    "kind": transition.kind,
                    "reason": transition.reason,
                    "at": transition.at.isoformat(),
                },
                idempotency_key=f"transition:{transition.pk}",
            )
    if colour_changed_ids and _subscribed(tenant, "account.health_changed"):
        scores = HealthScore.objects.for_tenant(tenant).filter(account_id__in=list(colour_changed_ids))
        for health in scores.select_related("account"):
            webhook_emit(
                tenant=tenant,
                event_type="account.health_changed",
                payload={
                    "account": _account(health.account),
                    "score": health.score,
                    "colour": health.colour,
                    "computed_at": health.computed_at.isoformat() if health.computed_at else None,
                },
                idempotency_key=f"health:{health.account_id}:{health.colour}:{health.computed_at:%Y-%m-%d}",
            )
