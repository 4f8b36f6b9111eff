"""Webhook events about accounts: the stage moves and health colour changes that the pipeline made, and the
changes of owner or details that people and integrations made."""

from csplatform.customers.api.serializers import AccountChangeSerializer
from csplatform.customers.models import AccountChange
from csplatform.sql import OneOf
from health.models import HealthScore
from lifecycle.models import StageTransition

from .webhooks import account_payload, webhooks_emit

CHANGES_PER_EMIT = 1000


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


def _account_updated(change_and_owners):
    change, owners = change_and_owners
    data = AccountChangeSerializer(change, context={"owners": owners}).data
    payload = {
        "account": account_payload(change.account),
        "change": change.pk,
        **{name: data[name] for name in ("at", "by", "by_email", "changes")},
    }
    return payload, f"account_change:{change.pk}"


def _with_owners(tenant, change_ids):
    """The changes, each with the owners they name (one query for them all), as the feed of changes reads them."""
    changes = list(
        AccountChange.objects.for_tenant(tenant)
        .filter(OneOf("pk", change_ids))
        .select_related("account", "actor")
        .order_by("pk")
    )
    owners = AccountChange.owners_named(changes)
    for change in changes:
        yield change, owners


def account_updates_emit(*, tenant, change_ids):
    """Emit account.updated for each of these recorded changes of an account's owner or details, in the
    form of the API's feed of changes (CSP_ACCOUNT_CHANGES_HOOK).

    The changes are read only when some endpoint subscribes, a thousand at a time (SQLite caps the parameters
    of one query, and an import may change a hundred thousand accounts), and each is announced once.
    """
    for start in range(0, len(change_ids), CHANGES_PER_EMIT):
        webhooks_emit(
            tenant=tenant,
            event_type="account.updated",
            rows=_with_owners(tenant, change_ids[start : start + CHANGES_PER_EMIT]),
            event=_account_updated,
        )
