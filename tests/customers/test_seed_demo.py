import datetime as dt
import io
import random
from collections import Counter
from decimal import Decimal

import pytest
import time_machine
from django.core.management import CommandError, call_command
from django.db.models import Count, Max, Sum

from csplatform.customers.demo.generate import build_accounts, pattern_list
from csplatform.customers.models import (
    Account,
    AccountChange,
    AccountNote,
    Contact,
    ContactChange,
    DailyPropertyRollup,
    DailyRollup,
    UsageEvent,
)
from csplatform.tenancy.models import Membership, Role, Tenant
from csplatform.tenancy.timezones import day_start, tenant_today, tenant_zone

from ..conftest import made_once

pytestmark = pytest.mark.django_db

# Fixed "now" so that the same seed gives the same data in every run of the suite.
NOW = dt.datetime(2025, 3, 12, 15, 30, tzinfo=dt.timezone.utc)
ALL_PATTERNS = {
    "onboarding",
    "healthy",
    "slow_adopter",
    "declining",
    "dormant",
    "trial_ending",
    "renewal_risk",
    "churned",
}


def seed(*args):
    out = io.StringIO()
    call_command("seed_demo", "--accounts", "40", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def frozen(time_machine):
    time_machine.move_to(NOW, tick=False)


@pytest.fixture
def demo(frozen):
    seed("--seed", "3")
    return Tenant.objects.get(slug="demo")


@pytest.fixture(scope="class")
def shared_demo_id(django_db_setup, django_db_blocker):
    """One seeded demo for a class of read-only tests."""
    with made_once(django_db_blocker):
        with time_machine.travel(NOW, tick=False):
            seed("--seed", "3")
        yield Tenant.objects.get(slug="demo").pk


@pytest.fixture
def shared_demo(shared_demo_id, frozen, db):
    return Tenant.objects.get(pk=shared_demo_id)


def with_pattern(tenant, pattern):
    accounts = [a for a in Account.objects.for_tenant(tenant) if a.attributes["demo_pattern"] == pattern]
    assert accounts, f"no {pattern} account"
    return accounts


def events_between(tenant, account, first_day, last_day):
    rollups = DailyRollup.objects.for_tenant(tenant).filter(account=account, day__gte=first_day, day__lte=last_day)
    return rollups.aggregate(total=Sum("count"))["total"] or 0


def snapshot(tenant_slug):
    tenant = Tenant.objects.get(slug=tenant_slug)
    events = dict(
        UsageEvent.objects.for_tenant(tenant).values_list("account__external_id").annotate(n=Count("id")).order_by()
    )
    return [
        (a.external_id, a.name, a.plan, a.mrr, a.renewal_date, a.attributes["demo_pattern"], events.get(a.external_id))
        for a in Account.objects.for_tenant(tenant).order_by("external_id")
    ]


def test_same_seed_gives_the_same_accounts_and_event_counts(frozen):
    seed("--seed", "11")
    first = snapshot("demo"), snapshot("acme")
    Tenant.objects.filter(slug__in=["demo", "acme"]).delete()
    seed("--seed", "11")
    assert (snapshot("demo"), snapshot("acme")) == first
    Tenant.objects.filter(slug__in=["demo", "acme"]).delete()
    seed("--seed", "12")
    assert [row[1] for row in snapshot("demo")] != [row[1] for row in first[0]]


def members_of(tenant):
    return {m.user.email: m.role for m in Membership.objects.for_tenant(tenant).select_related("user")}


def test_seed_creates_demo_and_acme_with_their_members(demo):
    acme = Tenant.objects.get(slug="acme")
    assert demo.name == "Demo Software"
    assert Account.objects.for_tenant(demo).count() == 40
    assert Account.objects.for_tenant(acme).count() == 12
    demo_members = members_of(demo)
    assert demo_members["admin@demo.example"] == Role.ADMIN
    assert demo_members["csm@demo.example"] == Role.CSM
    assert len([role for role in demo_members.values() if role == Role.CSM]) >= 3
    assert members_of(acme)["csm@demo.example"] == Role.CSM
    owners = {a.owner.email for a in Account.objects.for_tenant(demo).select_related("owner") if a.owner}
    assert "csm@demo.example" in owners and len(owners) >= 3
    assert "admin@demo.example" not in owners


def test_admin_signs_in_with_the_printed_password_and_sees_the_demo_portfolio(frozen, client):
    output = seed("--seed", "3")
    assert output.strip().splitlines()[-2:] == ["  admin@demo.example / demo", "  csm@demo.example / demo"]
    response = client.post("/login/", {"username": "admin@demo.example", "password": "demo"}, follow=True)
    assert response.redirect_chain[-1][0] == "/t/demo/"
    html = response.content.decode()
    first_name = Account.objects.for_tenant(Tenant.objects.get(slug="demo")).order_by("name").first().name
    assert '<table class="accounts">' in html and first_name in html


def test_demo_password_comes_from_the_environment_when_set(frozen, client, monkeypatch):
    monkeypatch.setenv("CSP_DEMO_PASSWORD", "correct horse battery")
    assert "csm@demo.example / correct horse battery" in seed()
    assert client.login(username="csm@demo.example", password="correct horse battery")
    assert not client.login(username="csm@demo.example", password="demo")


def test_if_empty_leaves_an_existing_demo_tenant_alone(demo):
    before = snapshot("demo")
    assert "already exists; nothing to do" in seed("--seed", "99", "--if-empty")
    assert snapshot("demo") == before
    assert Tenant.objects.filter(slug="demo").count() == 1


def test_seeding_again_without_if_empty_is_refused(demo):
    with pytest.raises(CommandError, match="--if-empty"):
        seed("--seed", "3")


def test_default_size_has_about_ten_churned_accounts_and_a_bounded_event_volume():
    rng = random.Random(1)
    assert Counter(pattern_list(300, random.Random(1)))["churned"] == 10
    zone = dt.timezone.utc
    specs = build_accounts(rng, count=300, today=NOW.date(), zone=zone, owners=4)
    assert len({spec.name for spec in specs}) == 300
    assert 30_000 <= sum(len(spec.events) for spec in specs) <= 200_000


class TestDemoPatterns:
    """What the later dashboard features must find in the demo data."""

    def test_every_pattern_is_present_even_in_a_small_demo(self, shared_demo):
        patterns = {a.attributes["demo_pattern"] for a in Account.objects.for_tenant(shared_demo)}
        assert patterns == ALL_PATTERNS

    def test_dormant_accounts_have_no_event_in_the_last_21_days(self, shared_demo):
        today = tenant_today(shared_demo)
        for account in with_pattern(shared_demo, "dormant"):
            events = UsageEvent.objects.for_tenant(shared_demo).filter(account=account)
            assert not events.filter(timestamp__gte=NOW - dt.timedelta(days=21)).exists()
            assert events.exists()
            assert events_between(shared_demo, account, today - dt.timedelta(days=20), today) == 0

    def test_trials_ending_this_week_are_on_the_trial_plan(self, shared_demo):
        for account in with_pattern(shared_demo, "trial_ending"):
            assert account.plan == "trial"
            assert NOW < account.trial_ends_at <= NOW + dt.timedelta(days=7)

    def test_onboarding_accounts_signed_up_recently_with_few_setup_events(self, shared_demo):
        today = tenant_today(shared_demo)
        for account in with_pattern(shared_demo, "onboarding"):
            assert today - dt.timedelta(days=14) <= account.signup_date <= today - dt.timedelta(days=2)
            setup = UsageEvent.objects.for_tenant(shared_demo).filter(
                account=account, event__in=["invite_sent", "integration_connected"]
            )
            assert 1 <= setup.count() <= 2
            assert account.trial_ends_at > NOW + dt.timedelta(days=7)

    def test_renewals_at_risk_renew_within_60_days_after_the_card_expires(self, shared_demo):
        today = tenant_today(shared_demo)
        for account in with_pattern(shared_demo, "renewal_risk"):
            assert today <= account.renewal_date <= today + dt.timedelta(days=60)
            assert account.card_expires_at < account.renewal_date

    def test_declining_accounts_use_less_in_the_last_30_days_than_the_30_before(self, shared_demo):
        today = tenant_today(shared_demo)
        for account in with_pattern(shared_demo, "declining"):
            recent = events_between(shared_demo, account, today - dt.timedelta(days=29), today)
            before = events_between(shared_demo, account, today - dt.timedelta(days=59), today - dt.timedelta(days=30))
            assert recent < before

    def test_healthy_accounts_use_more_now_than_at_the_start_of_the_90_days(self, shared_demo):
        today = tenant_today(shared_demo)
        for account in with_pattern(shared_demo, "healthy"):
            recent = events_between(shared_demo, account, today - dt.timedelta(days=29), today)
            early = events_between(shared_demo, account, today - dt.timedelta(days=90), today - dt.timedelta(days=61))
            assert recent > early

    def test_churned_accounts_stop_using_the_product_at_churned_at_but_at_a_third_one_signed_in_yesterday(
        self, shared_demo
    ):
        zone, yesterday = tenant_zone(shared_demo), tenant_today(shared_demo) - dt.timedelta(days=1)
        returns = []
        for account in sorted(with_pattern(shared_demo, "churned"), key=lambda account: account.pk):
            churned_at = dt.date.fromisoformat(account.attributes["churned_at"])
            events = UsageEvent.objects.for_tenant(shared_demo).filter(account=account)
            left = day_start(shared_demo, churned_at)
            assert events.filter(timestamp__lt=left).exists()
            after = [(row.event, row.timestamp.astimezone(zone).date()) for row in events.filter(timestamp__gte=left)]
            assert after in ([], [("login", yesterday)])
            returns.append(bool(after))
        assert returns == [index % 3 == 0 for index in range(len(returns))]

    def test_rollups_count_exactly_the_stored_events(self, shared_demo):
        events = UsageEvent.objects.for_tenant(shared_demo)
        rollups = DailyRollup.objects.for_tenant(shared_demo)
        by_event = dict(events.values_list("event").annotate(n=Count("id")).order_by())
        rolled = dict(rollups.values_list("event").annotate(n=Sum("count")).order_by())
        assert rolled == by_event
        assert set(by_event) >= {"login", "feature_used", "report_created", "invite_sent", "nps.answered"}
        scores = DailyPropertyRollup.objects.for_tenant(shared_demo).filter(event="nps.answered", prop="score")
        assert scores.aggregate(n=Sum("count"))["n"] == by_event["nps.answered"]
        assert all(0 <= row.latest_value <= 10 for row in scores)

    def test_feature_events_name_the_feature(self, shared_demo):
        features = UsageEvent.objects.for_tenant(shared_demo).filter(event="feature_used")
        assert features.exists()
        assert all(event.properties.get("feature") for event in features)

    def test_accounts_have_three_to_eight_contacts_with_roles_and_last_seen(self, shared_demo):
        events = UsageEvent.objects.for_tenant(shared_demo)
        last_events = dict(events.values_list("contact_id").annotate(last=Max("timestamp")).order_by())
        contacts = Contact.objects.for_tenant(shared_demo)
        per_account = Counter(contacts.values_list("account_id", flat=True))
        assert min(per_account.values()) >= 3 and max(per_account.values()) <= 8
        for account_id in per_account:
            roles = set(contacts.filter(account_id=account_id).values_list("role", flat=True))
            assert {"administrator", "champion", "billing"} <= roles
        assert all(contact.last_seen_at == last_events.get(contact.pk) for contact in contacts)

    def test_some_accounts_carry_their_owners_notes_written_after_signup_naming_their_contacts(self, shared_demo):
        notes = AccountNote.objects.for_tenant(shared_demo).select_related("account", "author")
        assert notes.exists() and notes.filter(pinned=True).exists()
        for note in notes:
            account = note.account
            assert note.author == account.owner or account.owner is None
            assert account.signup_date <= note.created_at.date() < tenant_today(shared_demo) + dt.timedelta(days=1)
            assert note.created_at < dt.datetime.now(dt.timezone.utc) and not note.edited
        champions = set(Contact.objects.for_tenant(shared_demo).filter(role="champion").values_list("name", flat=True))
        assert any(name in note.body for note in notes for name in champions)

    def test_some_accounts_were_handed_over_by_the_admin_from_another_csm_since_signup(self, shared_demo):
        handovers = AccountChange.objects.for_tenant(shared_demo).filter(fields__has_key="owner")
        handovers = handovers.select_related("account", "actor")
        assert handovers.exists()
        csms = set(Membership.objects.for_tenant(shared_demo).filter(role=Role.CSM).values_list("user_id", flat=True))
        for handover in handovers:
            previous, owner = handover.fields["owner"]
            assert handover.actor.email == "admin@demo.example" and handover.actor_label == str(handover.actor)
            assert owner == handover.account.owner_id and previous != owner and {previous, owner} <= csms
            day = handover.at.astimezone(tenant_zone(shared_demo)).date()
            assert handover.account.signup_date <= day < tenant_today(shared_demo)

    def test_the_crm_added_every_contact_on_its_accounts_signup_day_the_champions_who_left_since_too(
        self, shared_demo
    ):
        additions = ContactChange.objects.for_tenant(shared_demo).filter(added=True).select_related("account")
        removals = ContactChange.objects.for_tenant(shared_demo).filter(removed=True)
        added = {(change.contact_id, change.contact_name) for change in additions}
        contacts = Contact.objects.for_tenant(shared_demo)
        assert added == {(contact.pk, str(contact)) for contact in contacts} | {
            (None, removal.contact_name) for removal in removals
        }
        for change in additions:
            assert change.actor is None and change.actor_label == ""
            assert change.at.astimezone(tenant_zone(shared_demo)).date() == change.account.signup_date
            assert change.fields["name"] == [None, change.contact_name]

    def test_some_owners_recorded_that_a_user_took_over_as_champion_and_removed_some_former_ones_who_left(
        self, shared_demo
    ):
        changes = ContactChange.objects.for_tenant(shared_demo).filter(added=False)
        changes = changes.select_related("contact", "account", "actor")
        by_account = {}
        for change in changes:
            by_account.setdefault(change.account, {})["removed" if change.removed else change.contact.role] = change
        assert {"user", "champion"} in [set(swap) for swap in by_account.values()]
        assert {"removed", "champion"} in [set(swap) for swap in by_account.values()]
        for account, swap in by_account.items():
            champion = swap["champion"]
            former = swap.get("user") or swap["removed"]
            assert champion.fields == {"role": ["user", "champion"]} and champion.contact.account == account
            if former.removed:
                assert former.contact is None and former.fields["role"] == ["champion", None]
                assert former.contact_name == former.fields["name"][0]
            else:
                assert former.fields == {"role": ["champion", "user"]} and former.contact.account == account
            assert former.at == champion.at and former.actor == champion.actor == account.owner
            day = former.at.astimezone(tenant_zone(shared_demo)).date()
            assert account.signup_date <= day < tenant_today(shared_demo)
            assert account.attributes["demo_pattern"] != "churned"

    def test_churned_accounts_lost_their_mrr_the_day_after_they_churned_and_some_others_grew_or_shrank(
        self, shared_demo
    ):
        changes = AccountChange.objects.for_tenant(shared_demo).filter(fields__has_key="mrr").select_related("account")
        zone, today = tenant_zone(shared_demo), tenant_today(shared_demo)
        patterns = set()
        for change in changes:
            account, (previous, now) = change.account, change.fields["mrr"]
            pattern = account.attributes["demo_pattern"]
            patterns.add(pattern)
            assert Decimal(now) == account.mrr and Decimal(previous) != account.mrr
            assert change.actor is None and change.actor_label == ""
            day = change.at.astimezone(zone).date()
            assert account.signup_date <= day < today and "_mrr_before_churn" not in account.attributes
            if pattern == "churned":
                churned_at = dt.date.fromisoformat(account.attributes["churned_at"])
                assert account.mrr == 0 and day == churned_at + dt.timedelta(days=1)
            else:
                grew = Decimal(now) > Decimal(previous)
                assert (pattern, grew) in {("healthy", True), ("declining", False)}
        assert {"churned", "healthy", "declining"} <= patterns
