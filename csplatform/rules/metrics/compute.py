"""`metrics_compute`: the metric values of chunks of accounts and their contacts, assembled per row and stored."""

from django.db import transaction
from django.utils import timezone

from csplatform.customers.models import Account, Contact
from csplatform.sql import OneOf
from csplatform.tenancy.timezones import tenant_day, tenant_today

from ..models import AccountMetrics, ContactMetrics
from .rollups import Rollups
from .specs import MetricPlan
from .store import changed_values_store

CHUNK_SIZE = 2000
# Each row is read with the values stored for it, to write only those that change.
ACCOUNT_FIELDS = ("id", "signup_date", "renewal_date", "card_expires_at", "metric_values__values")


def _days_between(start, end):
    return (end - start).days if start and end else None


def _days_since_signup(signup_date, today):
    # An account that signs up after the day computed for did not exist yet.
    if signup_date is None or signup_date > today:
        return None
    return (today - signup_date).days


def _later(day, other):
    """The later of two days, either of which may be unknown (None)."""
    if day is None or other is None:
        return other if day is None else day
    return max(day, other)


def _account_chunks(tenant, account_ids):
    """Chunks of account rows, one query each; ids of other tenants are silently not found."""
    accounts = (
        Account.objects.for_tenant(tenant)
        .order_by("pk")
        .values(*ACCOUNT_FIELDS, trial_end_day=tenant_day(tenant, "trial_ends_at"))
    )
    if account_ids is not None:
        account_ids = sorted(set(account_ids))
        for start in range(0, len(account_ids), CHUNK_SIZE):
            chunk = list(accounts.filter(OneOf("pk", account_ids[start : start + CHUNK_SIZE])))
            if chunk:
                yield chunk
        return
    last_id = 0
    while chunk := list(accounts.filter(pk__gt=last_id)[:CHUNK_SIZE]):
        yield chunk
        if len(chunk) < CHUNK_SIZE:
            return
        last_id = chunk[-1]["id"]


def metrics_compute(*, tenant, account_ids=None, today=None):
    """Compute and store every metric of these accounts (all of the tenant's when None) and their contacts.

    1. Load the tenant's metric definitions once.
    2. For each chunk of accounts, read the accounts and their contacts, run
       one grouped query per metric family over the rollups, and upsert the
       AccountMetrics and ContactMetrics rows whose values changed (the
       stored values are read with the accounts and contacts), in bulk.
    `today` is the tenant-local date the windows end on. Returns the number of
    accounts computed.
    """
    today = today or tenant_today(tenant)
    plan = MetricPlan.for_tenant(tenant)
    computed = 0
    for accounts in _account_chunks(tenant, account_ids):
        _compute_chunk(tenant, accounts, plan, today)
        computed += len(accounts)
    return computed


@transaction.atomic
def _compute_chunk(tenant, accounts, plan, today):
    account_ids = [account["id"] for account in accounts]
    contacts = list(
        Contact.objects.for_tenant(tenant)
        .filter(OneOf("account_id", account_ids))
        .order_by()
        .values_list("id", "account_id", tenant_day(tenant, "last_seen_at"), "metric_values__values")
    )
    rollups = Rollups(tenant, account_ids, today)
    account_events, contact_events, contact_last_day, account_last_day = rollups.activity(
        plan.account_summed, plan.contact_events
    )
    active_days = rollups.events(["account_id"], plan.account_active_days)
    totals = rollups.property_totals(plan.property_totals)
    latest = rollups.property_latest(plan.property_latest)
    distinct = rollups.distinct_values(plan.distinct_values)

    contact_values = {}
    for contact_id, account_id, last_seen, _ in contacts:
        key = (account_id, contact_id)
        if last_seen is not None and last_seen > today:
            # Seen after the day computed for (a past day replayed): the rollups of the windows tell
            # when it was last seen up to that day.
            last_seen = None
        account_last_day[account_id] = _later(account_last_day.get(account_id), last_seen)
        contact_values[contact_id] = {
            "days_since_last_seen": _days_between(_later(contact_last_day.get(key), last_seen), today),
            **plan.contact_defaults,
            **contact_events.get(key, {}),
        }

    account_values = {}
    for account in accounts:
        account_id = account["id"]
        account_values[account_id] = {
            "days_since_signup": _days_since_signup(account["signup_date"], today),
            "days_to_renewal": _days_between(today, account["renewal_date"]),
            "days_to_trial_end": _days_between(today, account["trial_end_day"]),
            "days_to_card_expiry": _days_between(today, account["card_expires_at"]),
            "days_since_last_seen": _days_between(account_last_day.get(account_id), today),
            **plan.account_defaults,
            **account_events.get(account_id, {}),
            **active_days.get((account_id,), {}),
            **totals.get(account_id, {}),
            **latest.get(account_id, {}),
            **distinct.get(account_id, {}),
        }

    now = timezone.now()
    stored_accounts = {account["id"]: account["metric_values__values"] for account in accounts}
    stored_contacts = {contact_id: stored for contact_id, _, _, stored in contacts}
    changed_values_store(
        AccountMetrics, "account", tenant=tenant, values_by_subject=account_values, stored=stored_accounts, now=now
    )
    changed_values_store(
        ContactMetrics, "contact", tenant=tenant, values_by_subject=contact_values, stored=stored_contacts, now=now
    )
