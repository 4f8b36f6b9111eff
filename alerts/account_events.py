"""Webhook events about accounts: the stage moves and health colour changes that the pipeline made, and the
changes of owner or details, theirs and their contacts', that people and integrations made."""

from csplatform.customers.api.serializers import AccountChangeSerializer, ContactChangeSerializer
from csplatform.customers.models import AccountChange, ContactChange
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


CHANGE_FIELDS = ("at", "by", "by_email", "changes")


def _account_updated(change_and_owners):
    change, owners = change_and_owners
    data = AccountChangeSerializer(change, context={"owners": owners}).data
    payload = {
        "account": account_payload(change.account),
        "change": change.pk,
        **{name: data[name] for name in CHANGE_FIELDS},
    }
    return payload, f"account_change:{change.pk}"


def _contact_updated(change):
    """The payload of a contact's addition, change or removal; a removal is announced before the contact is
    deleted."""
    data = ContactChangeSerializer(change).data
    contact = change.contact
    payload = {
        "account": account_payload(change.account),
        "contact": {"id": contact.pk, "external_id": contact.external_id, "name": contact.name, "email": contact.email},
        "change": change.pk,
        "added": change.added,
        "removed": change.removed,
        **{name: data[name] for name in CHANGE_FIELDS},
    }
    return payload, f"contact_change:{change.pk}"


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


def _changes_emit(tenant, event_type, change_ids, rows, event):
    """Emit `event_type` for each of these recorded changes, read as `rows(tenant, ids)` only when some endpoint
    subscribes, a thousand at a time (SQLite caps the parameters of one query, and an import may change a
    hundred thousand records); each change is announced once."""
    for start in range(0, len(change_ids), CHANGES_PER_EMIT):
        webhooks_emit(
            tenant=tenant, event_type=event_type, rows=rows(tenant, change_ids[start : start + CHANGES_PER_EMIT]),
            event=event,
        )


def account_updates_emit(*, tenant, change_ids):
    """Emit account.updated for each of these recorded changes of an account's owner or details, in the
    form of the API's feed of changes (CSP_ACCOUNT_CHANGES_HOOK)."""
    _changes_emit(tenant, "account.updated", change_ids, _with_owners, _account_updated)


def _contact_changes(tenant, change_ids):
    return (
        ContactChange.objects.for_tenant(tenant)
        .filter(OneOf("pk", change_ids))
        .select_related("contact", "account", "actor")
        .order_by("pk")
    )


def contact_updates_emit(*, tenant, change_ids):
    """Emit contact.updated for each of these recorded additions, changes and removals of contacts, in the form of
    the API's feed of contact changes (CSP_CONTACT_CHANGES_HOOK)."""
    _changes_emit(tenant, "contact.updated", change_ids, _contact_changes, _contact_updated)
