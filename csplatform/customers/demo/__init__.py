"""Deterministic demo data: the `demo` and `acme` tenants with realistic accounts.

Generation and storage are separate: `generate.build_accounts()` is a pure
function of a `random.Random` and today's date that returns plain specs, and
`demo_seed()` stores them (bulk inserts; events through the ingest service).
The same seed on the same day gives the same data, so tests can check the
patterns the dashboard must show. Every account records its pattern in
`attributes["demo_pattern"]`:

- onboarding      signed up 2-14 days ago on a 30-day trial, a few setup events
- healthy         usage rising over the 90 days
- slow_adopter    signed up 6-16 weeks ago, low usage of one or two features
- declining       usage falling over the last 30 days
- dormant         no event in the last 21 days or more
- trial_ending    on the trial plan, trial ends within 7 days
- renewal_risk    renews within 60 days, card expires before the renewal
- churned         usage stopped at `attributes["churned_at"]`, for health backtests;
                  at every third, someone signed in again yesterday
"""

import os
import random
from dataclasses import dataclass

from django.contrib.auth.hashers import make_password
from django.db import transaction

from csplatform.customers.ingest import events_ingest
from csplatform.customers.models import Account, AccountChange, AccountNote, Contact, ContactChange, ContactRole
from csplatform.customers.services import contact_delete
from csplatform.tenancy.models import Role, Tenant
from csplatform.tenancy.services import membership_set, tenant_create, user_get_or_create
from csplatform.tenancy.timezones import tenant_today, tenant_zone

from .generate import build_accounts

INGEST_BATCH = 2000

DEMO_TENANT = ("demo", "Demo Software", "America/New_York")
ACME_TENANT = ("acme", "Acme Analytics", "Europe/London")
ACME_ACCOUNTS = 12
DEMO_ADMIN = ("admin@demo.example", "Avery Quinn")
DEMO_CSM = ("csm@demo.example", "Sam Rivera")
DEMO_OTHER_CSMS = [
    ("priya.nair@demo.example", "Priya Nair"),
    ("jonas.berg@demo.example", "Jonas Berg"),
    ("maya.chen@demo.example", "Maya Chen"),
]
ACME_ADMIN = ("admin@acme.example", "Robin Acme")
# The champion of every this many accounts given to `champions_leave`, the first among them, left today.
CHAMPION_LEAVES_EVERY = 40


@dataclass
class SeedResult:
    tenants: list
    accounts: int
    events: int
    sign_in: list


class DemoTenantExists(Exception):
    pass


def accounts_store(*, tenant, specs, owners, admin):
    """Store the specs' accounts, contacts and events. Returns the number of events.

    1. Accounts, their owners' notes, the `admin`'s handovers of some of them, the changes of some of their
       MRR (as an integration records them), contacts, and their owners' records of some new champions,
       with bulk inserts, to learn their ids.
    2. Events through the ingest service, a few accounts at a time: it also
       writes the daily rollups, moves contacts' last seen and marks the
       accounts dirty, exactly as for events that arrive through the API.
    """
    accounts = Account.objects.bulk_create(
        [
            Account(
                tenant=tenant,
                external_id=s.external_id,
                name=s.name,
                domain=s.domain,
                owner=owners[s.owner_index] if s.owner_index is not None else None,
                plan=s.plan,
                mrr=s.mrr,
                signup_date=s.signup_date,
                trial_ends_at=s.trial_ends_at,
                contract_start=s.contract_start,
                renewal_date=s.renewal_date,
                card_expires_at=s.card_expires_at,
                attributes=s.attributes,
            )
            for s in specs
        ],
        batch_size=500,
    )
    contacts = Contact.objects.bulk_create(
        [
            Contact(
                tenant=tenant,
                account=account,
                external_id=c.external_id,
                name=c.name,
                email=c.email,
                title=c.title,
                role=c.role,
            )
            for account, spec in zip(accounts, specs)
            for c in spec.contacts
        ],
        batch_size=500,
    )
    AccountNote.objects.bulk_create(
        AccountNote(
            tenant=tenant,
            account=account,
            author=account.owner or owners[0],
            body=note.text,
            pinned=note.pinned,
            created_at=note.written_at,
            updated_at=note.written_at,
        )
        for account, spec in zip(accounts, specs)
        for note in spec.notes
    )
    AccountChange.objects.bulk_create(
        change for account, spec in zip(accounts, specs) for change in past_changes(account, spec, owners, admin)
    )
    account_contacts = {}
    for contact in contacts:
        account_contacts.setdefault(contact.account_id, []).append(contact)
    ContactChange.objects.bulk_create(
        change
        for account, spec in zip(accounts, specs)
        for past in (contacts_added, past_champion_change)
        for change in past(account, spec, account_contacts[account.pk])
    )
    contact_ids = iter(contact.pk for contact in contacts)
    batch, stored = [], 0
    for account, spec in zip(accounts, specs):
        ids = [next(contact_ids) for _ in spec.contacts]
        batch += [
            {
                "message_id": f"demo-{spec.external_id}-{number:05d}",
                "account_id": account.pk,
                "contact_id": ids[event.contact_index],
                "event": event.event,
                "timestamp": event.timestamp,
                "properties": event.properties,
            }
            for number, event in enumerate(spec.events, start=1)
        ]
        # Whole accounts per batch keep each batch's contacts few.
        if len(batch) >= INGEST_BATCH:
            stored += events_ingest(tenant=tenant, events=batch).stored
            batch = []
    if batch:
        stored += events_ingest(tenant=tenant, events=batch).stored
    return stored


def past_changes(account, spec, owners, admin):
    """The account's recorded changes: the `admin` handing it over from another CSM, and its MRR changing as an
    integration records it (by no one)."""
    if spec.handover:
        previous = owners[spec.handover.previous_owner_index]
        yield AccountChange(tenant=account.tenant, account=account, at=spec.handover.at, actor=admin,
                            actor_label=str(admin), fields={"owner": [previous.pk, account.owner_id]})
    if spec.mrr_change:
        yield AccountChange(tenant=account.tenant, account=account, at=spec.mrr_change.at,
                            fields={"mrr": [f"{spec.mrr_change.previous:.2f}", f"{spec.mrr:.2f}"]})


def departed_champion(account, spec):
    """The former champion who has left the customer since, unsaved (the owner removed them), or None."""
    change = spec.champion_change
    return Contact(**vars(change.departed), account=account) if change and change.departed else None


def contacts_added(account, spec, contacts):
    """The CRM integration adding the account's contacts on its signup day (by no one), the champion who has
    left since among them."""
    departed = departed_champion(account, spec)
    added = contacts + ([departed] if departed else [])
    for contact in added:
        yield ContactChange(
            tenant=account.tenant, account=account, at=spec.contacts_added_at, contact=contact if contact.pk else None,
            contact_name=str(contact), added=True, fields=ContactChange.addition(contact),
        )


def past_champion_change(account, spec, contacts):
    """The owner's record that the account's champion took over from a contact who is a user now, or from one
    who left the customer and whom the owner removed."""
    if not spec.champion_change:
        return
    change, owner = spec.champion_change, account.owner
    recorded = dict(tenant=account.tenant, account=account, at=change.at, actor=owner, actor_label=str(owner))
    champion = next(contact for contact in contacts if contact.role == ContactRole.CHAMPION)
    if change.departed:
        departed = departed_champion(account, spec)
        yield ContactChange(
            **recorded, contact_name=str(departed), removed=True, fields=ContactChange.removal(departed)
        )
        swaps = [(champion, ContactRole.USER, ContactRole.CHAMPION)]
    else:
        former = contacts[change.former_index]
        swaps = [(former, ContactRole.CHAMPION, ContactRole.USER), (champion, ContactRole.USER, ContactRole.CHAMPION)]
    for contact, before, after in swaps:
        yield ContactChange(**recorded, contact=contact, contact_name=str(contact),
                            fields={"role": [before.value, after.value]})


def champions_leave(*, tenant, accounts):
    """Today's news from the CRM integration: the champion of every CHAMPION_LEAVES_EVERY-th of `accounts`, the
    first among them, left the customer, and no one has taken over yet. Removed through the service, by no one,
    as the integration's sync removes them. Returns the number of contacts removed.

    The seed cannot store them gone: the replay of the past reads today's contacts, and would find these accounts
    without a champion on days when they had one."""
    left = list(accounts)[::CHAMPION_LEAVES_EVERY]
    champions = Contact.objects.for_tenant(tenant).champions().filter(account__in=left).select_related("account")
    for contact in champions:
        contact_delete(tenant=tenant, contact=contact)
    return len(champions)


def demo_password():
    return os.environ.get("CSP_DEMO_PASSWORD") or "demo"


def _seed_tenant(*, slug, name, timezone_name, rng, count, members, password_hash):
    """Create one tenant, its members and its accounts, owned by the tenant's CSMs."""
    tenant = tenant_create(slug=slug, name=name, timezone_name=timezone_name)
    users = []
    for email, full_name, role in members:
        user = user_get_or_create(email=email, name=full_name)
        if not user.has_usable_password():
            # New demo users share one password, so hash it once: hashing is slow on purpose.
            user.password = password_hash
            user.save(update_fields=["password"])
        membership_set(tenant=tenant, user=user, role=role)
        users.append((user, role))
    admin = next(user for user, role in users if role == Role.ADMIN)
    owners = [user for user, role in users if role == Role.CSM] or [admin]
    zone = tenant_zone(tenant)
    specs = build_accounts(rng, count=count, today=tenant_today(tenant), zone=zone, owners=len(owners))
    return tenant, len(specs), accounts_store(tenant=tenant, specs=specs, owners=owners, admin=admin)


@transaction.atomic
def demo_seed(*, seed=1, accounts=300):
    """Create the `demo` tenant (`accounts` accounts) and the small `acme` tenant.

    Raises DemoTenantExists when either tenant is already there; existing users keep
    their passwords. Dates are relative to today in each tenant's time zone.
    """
    existing = Tenant.objects.filter(slug__in=[DEMO_TENANT[0], ACME_TENANT[0]]).order_by("slug").first()
    if existing is not None:
        raise DemoTenantExists(f"Tenant {existing.slug!r} already exists.")
    password_hash = make_password(demo_password())

    demo_members = [(*DEMO_ADMIN, Role.ADMIN), (*DEMO_CSM, Role.CSM)]
    demo_members += [(email, name, Role.CSM) for email, name in DEMO_OTHER_CSMS]
    demo, demo_count, demo_events = _seed_tenant(
        slug=DEMO_TENANT[0],
        name=DEMO_TENANT[1],
        timezone_name=DEMO_TENANT[2],
        rng=random.Random(seed),
        count=accounts,
        members=demo_members,
        password_hash=password_hash,
    )
    # The demo CSM also sees acme, so the tenant switcher has something to switch.
    acme, acme_count, acme_events = _seed_tenant(
        slug=ACME_TENANT[0],
        name=ACME_TENANT[1],
        timezone_name=ACME_TENANT[2],
        rng=random.Random(f"{seed}:acme"),
        count=ACME_ACCOUNTS,
        members=[(*ACME_ADMIN, Role.ADMIN), (*DEMO_CSM, Role.CSM)],
        password_hash=password_hash,
    )
    return SeedResult(
        tenants=[demo, acme],
        accounts=demo_count + acme_count,
        events=demo_events + acme_events,
        sign_in=[DEMO_ADMIN[0], DEMO_CSM[0]],
    )
