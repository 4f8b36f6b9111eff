"""The benchmark tenant: deterministic accounts, contacts and events loaded with COPY.

Rows come from a seeded random generator, so a scale always yields the same
data relative to the day it runs (metric windows count back from today).
Rollups and contacts' last-seen times are then derived with one set-based
statement each, as if every event had come through ingest.
"""

import datetime as dt
import io
import json
import random
import time

from django.db import connection, transaction
from django.utils import timezone

from csplatform.customers.models import Account, Contact, DailyPropertyRollup, DailyRollup, UsageEvent
from csplatform.tenancy.services import tenant_create
from alerts.models import Severity
from alerts.services import alert_rule_create, segment_create
from health.defaults import scorecards_apply_defaults
from lifecycle.services import stages_apply_template
from playbooks.services import playbook_create, playbook_templates_install

from .database import table

STAGE_TEMPLATE = "implementation_to_mature_adoption"
PLANS = ("starter", "team", "pro", "enterprise")
# (event name, relative frequency); nps.answered carries the numeric property the NPS metric averages.
EVENT_MIX = (
    ("login", 30),
    ("page_viewed", 30),
    ("feature_used", 25),
    ("invite_sent", 4),
    ("integration_connected", 2),
    ("support_ticket", 5),
    ("nps.answered", 4),
)
FEATURES = ("reports", "dashboards", "exports", "alerts", "api")
COPY_CHUNK = 200_000
# Issue 8's configuration: the seed-002 stages with their scorecards, segments, 10 alert rules the pipeline
# evaluates on every account, and 3 playbooks it enrolls accounts into, one per kind of trigger it fires.
SEGMENTS = (
    ("at_risk", "At risk", "health.score < 40"),
    ("power_users", "Power users", "metric.events_30d >= 100 and metric.active_contacts_30d >= 3"),
)
ALERT_RULES = (
    ("low_health", "Health below 30", "health.score < 30", Severity.WARNING),
    ("gone_quiet", "Nobody seen for two weeks", "metric.days_since_last_seen >= 14", Severity.CRITICAL),
    ("health_dropped", "Health dropped 20 points in a week", "health.delta_7d <= -20", Severity.WARNING),
    ("onboarding_overdue", "Onboarding past its two weeks", 'stage == "onboarding" and days_in_stage > 14',
     Severity.WARNING),
    ("implementation_stuck", "Implementation stuck", 'stage == "implementation" and stage.status == "stuck"',
     Severity.CRITICAL),
    ("usage_falling", "Usage halved over 30 days", "metric.usage_trend_30d <= -50", Severity.WARNING),
    ("lone_user", "One user left in early adoption", 'stage == "early_adoption" and metric.active_contacts_30d < 2',
     Severity.WARNING),
    ("detractor", "NPS of a detractor", "metric.nps_avg_90d < 7", Severity.INFO),
    ("support_spike", "Ten support tickets in 30 days", "metric.support_tickets_30d >= 10", Severity.WARNING),
    ("card_expiring", "Card expires within 30 days", "account.card_expires_at within 30 days", Severity.CRITICAL),
)
PLAYBOOKS = ("onboarding_welcome",)
TASK_PLAYBOOKS = (
    ("turned_red", "Health turned red: call the customer", "health_colour_changed", {"colour": "red"},
     "Call {{ account.name }}: health turned red"),
    ("power_user_advocacy", "Power users: ask for a case study", "segment_entered", {"segment": "power_users"},
     "Ask {{ account.name }} for a case study"),
)


def copy_rows(model, columns, lines):
    """COPY text-format lines (already tab-separated) into the model's table."""
    buffer = io.StringIO("".join(lines))
    with connection.cursor() as cursor:
        cursor.cursor.copy_expert(f"COPY {table(model)} ({', '.join(columns)}) FROM STDIN", buffer)


def timed(timings, name):
    class Timer:
        def __enter__(self):
            self.start = time.perf_counter()

        def __exit__(self, *exc):
            timings[name] = timings.get(name, 0.0) + time.perf_counter() - self.start

    return Timer()


class Plan:
    """What to generate for one tenant: each account's activity shape, drawn once from the seed."""

    def __init__(self, scale, seed):
        self.scale = scale
        self.rng = random.Random(seed)
        self.now = timezone.now().replace(minute=0, second=0, microsecond=0)
        # Most accounts are active up to today; a quarter went quiet some days ago, so stages and health spread.
        self.quiet_days = [0 if self.rng.random() < 0.75 else self.rng.randint(8, 80) for _ in range(scale.accounts)]
        # A skewed weight per account: a few heavy users, a long tail of light ones.
        self.weights = [self.rng.paretovariate(1.5) for _ in range(scale.accounts)]

    def account_lines(self, tenant_id):
        now = self.now.isoformat()
        for index in range(self.scale.accounts):
            signup = (self.now - dt.timedelta(days=self.rng.randint(1, 720))).date()
            renewal = signup + dt.timedelta(days=365 * (1 + (self.now.date() - signup).days // 365))
            plan = PLANS[index % len(PLANS)]
            yield (
                f"{tenant_id}\tacc-{index:07d}\tAccount {index:07d}\tacc{index}.example\t{plan}\t"
                f"{(index % 50 + 1) * 100}.00\tUSD\t{signup}\t\\N\t{signup}\t{renewal}\t\\N\t{{}}\t{now}\t{now}\n"
            )

    def contact_lines(self, tenant_id, account_ids):
        now = self.now.isoformat()
        for index in range(self.scale.contacts):
            account_index = index % self.scale.accounts
            yield (
                f"{tenant_id}\tcon-{index:08d}\t{account_ids[account_index]}\tc{index}@acc{account_index}.example\t"
                f"Contact {index}\t\tuser\t\\N\t{{}}\tf\t{now}\t{now}\n"
            )

    def events(self, count, prefix, live=False):
        """`count` event tuples (message_id, account_index, contact_index or None, event, ISO timestamp, properties).

        Spread over the days of history, as a backfill sends them; or `live`, as a product's traffic sends
        them: stamped now, from the accounts still active (a quiet account sends nothing today).
        """
        names = [name for name, _ in EVENT_MIX]
        name_weights = [weight for _, weight in EVENT_MIX]
        weights = self.weights
        if live:
            weights = [0 if quiet else weight for weight, quiet in zip(self.weights, self.quiet_days)]
        accounts = self.rng.choices(range(self.scale.accounts), weights=weights, k=count)
        events = self.rng.choices(names, weights=name_weights, k=count)
        per_account = max(1, self.scale.contacts // self.scale.accounts)
        now = int((timezone.now() if live else self.now).timestamp())
        days = {}
        for serial, (account_index, name) in enumerate(zip(accounts, events)):
            quiet = self.quiet_days[account_index]
            ago = 0 if live else int(self.rng.uniform(quiet * 86400, self.scale.days * 86400))
            day, second = divmod(now - ago, 86400)
            if day not in days:
                days[day] = dt.datetime.fromtimestamp(day * 86400, dt.timezone.utc).date().isoformat()
            # Formatted by hand: datetime arithmetic and isoformat() would dominate building millions of rows.
            timestamp = f"{days[day]}T{second // 3600:02d}:{second // 60 % 60:02d}:{second % 60:02d}+00:00"
            contact_slot = self.rng.randrange(per_account + 1)
            contact_index = None if contact_slot == per_account else contact_slot * self.scale.accounts + account_index
            if contact_index is not None and contact_index >= self.scale.contacts:
                contact_index = None
            if name == "nps.answered":
                properties = {"score": self.rng.randint(0, 10)}
            elif name == "feature_used":
                properties = {"feature": FEATURES[serial % len(FEATURES)]}
            else:
                properties = {}
            yield (f"{prefix}{serial:09d}", account_index, contact_index, name, timestamp, properties)


def event_lines(tenant_id, events, account_ids, contact_ids, received_at):
    received = received_at.isoformat()
    for message_id, account_index, contact_index, name, timestamp, properties in events:
        contact = "\\N" if contact_index is None else contact_ids[contact_index]
        yield (
            f"{tenant_id}\t{message_id}\t{account_ids[account_index]}\t{contact}\t{name}\t"
            f"{timestamp}\t{json.dumps(properties)}\t{received}\n"
        )


EVENT_COLUMNS = [
    "tenant_id", "message_id", "account_id", "contact_id", "event", "timestamp", "properties", "received_at",
]


def copy_events(tenant_id, events, account_ids, contact_ids):
    lines = []
    received_at = timezone.now()
    for line in event_lines(tenant_id, events, account_ids, contact_ids, received_at):
        lines.append(line)
        if len(lines) >= COPY_CHUNK:
            copy_rows(UsageEvent, EVENT_COLUMNS, lines)
            lines = []
    if lines:
        copy_rows(UsageEvent, EVENT_COLUMNS, lines)


def ids_by_external_id(model, tenant):
    # External ids are zero-padded serials, so their order is the generation order.
    return list(model.objects.for_tenant(tenant).order_by("external_id").values_list("pk", flat=True))


def rollups_build(tenant):
    """Derive both rollup tables and contacts' last-seen times from the events, one statement each."""
    with connection.cursor() as cursor:
        # Statistics that know this tenant first: planned from an earlier tenant's, the last-seen UPDATE
        # took a nested loop that re-read the events per contact (minutes at 30k accounts).
        analyze(cursor, (UsageEvent, Account, Contact))
        # Ordered by day, the rows lie in the table as ingest leaves them, each day's written on that day:
        # today's updates then dirty the table's last pages, not a page in every few across all of it.
        cursor.execute(
            f"""
            INSERT INTO {table(DailyRollup)} (tenant_id, account_id, contact_ref, day, event, count)
            SELECT tenant_id, account_id, COALESCE(contact_id, 0), (timestamp AT TIME ZONE %s)::date, event, count(*)
            FROM {table(UsageEvent)} WHERE tenant_id = %s
            GROUP BY 1, 2, 3, 4, 5 ORDER BY 4
            """,
            [tenant.timezone, tenant.pk],
        )
        cursor.execute(
            f"""
            INSERT INTO {table(DailyPropertyRollup)}
                (tenant_id, account_id, day, event, prop, total, count, latest_value, latest_at)
            SELECT e.tenant_id, e.account_id, (e.timestamp AT TIME ZONE %s)::date, e.event, p.key,
                   sum(p.value::text::float), count(*),
                   (array_agg(p.value::text::float ORDER BY e.timestamp DESC))[1], max(e.timestamp)
            FROM {table(UsageEvent)} e CROSS JOIN LATERAL jsonb_each(e.properties) p
            WHERE e.tenant_id = %s AND jsonb_typeof(p.value) = 'number'
            GROUP BY 1, 2, 3, 4, 5 ORDER BY 3
            """,
            [tenant.timezone, tenant.pk],
        )
        cursor.execute(
            f"""
            UPDATE {table(Contact)} c SET last_seen_at = s.seen
            FROM (SELECT contact_id, max(timestamp) AS seen FROM {table(UsageEvent)}
                  WHERE tenant_id = %s AND contact_id IS NOT NULL GROUP BY contact_id) s
            WHERE c.id = s.contact_id AND c.tenant_id = %s
            """,
            [tenant.pk, tenant.pk],
        )
        analyze(cursor, (DailyRollup, DailyPropertyRollup, Contact))


def analyze(cursor, models):
    # Autovacuum may be off or late; without statistics the planner scans all contacts per id lookup.
    for model in models:
        cursor.execute(f"ANALYZE {table(model)}")


ACCOUNT_COLUMNS = [
    "tenant_id", "external_id", "name", "domain", "plan", "mrr", "currency", "signup_date", "trial_ends_at",
    "contract_start", "renewal_date", "card_expires_at", "attributes", "created_at", "updated_at",
]
CONTACT_COLUMNS = [
    "tenant_id", "external_id", "account_id", "email", "name", "title", "role", "last_seen_at", "attributes",
    "unsubscribed", "created_at", "updated_at",
]


def plan_seed(scale):
    return f"csplatform-bench:{scale.accounts}:{scale.events}"


def skip_foreign_key_checks():
    """Bulk-load mode for this transaction: the generated rows are consistent by construction.

    PostgreSQL checks foreign keys with per-row triggers, queued until commit
    for Django's deferred constraints; in replica mode those triggers do not
    fire. Needs a superuser, which a benchmark database on loopback has.
    """
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL session_replication_role = replica")


def configure(tenant):
    stages_apply_template(tenant=tenant, template_key=STAGE_TEMPLATE, actor=None)
    scorecards_apply_defaults(tenant=tenant)
    for key, name, criteria in SEGMENTS:
        segment_create(tenant=tenant, actor=None, key=key, name=name, criteria_text=criteria)
    for key, name, condition, severity in ALERT_RULES:
        alert_rule_create(tenant=tenant, actor=None, key=key, name=name, condition_text=condition, severity=severity)
    playbook_templates_install(tenant=tenant, keys=list(PLAYBOOKS))
    for key, name, trigger_type, trigger_config, title in TASK_PLAYBOOKS:
        playbook_create(
            tenant=tenant, actor=None, key=key, name=name, trigger_type=trigger_type, trigger_config=trigger_config,
            steps=[{"kind": "create_task", "config": {"title": title, "due_in_days": 1}}], enabled=True,
        )


def tenant_build(*, slug, scale, timings):
    """Create the tenant and its data; returns (tenant, plan, account_ids, contact_ids). Each step lands in timings."""
    plan = Plan(scale, seed=plan_seed(scale))
    with transaction.atomic():
        tenant = tenant_create(slug=slug, name=f"Bench {scale.name}")
        with timed(timings, "accounts_copy"):
            copy_rows(Account, ACCOUNT_COLUMNS, plan.account_lines(tenant.pk))
            account_ids = ids_by_external_id(Account, tenant)
        with timed(timings, "contacts_copy"):
            copy_rows(Contact, CONTACT_COLUMNS, plan.contact_lines(tenant.pk, account_ids))
            contact_ids = ids_by_external_id(Contact, tenant)
    with timed(timings, "events_copy"), transaction.atomic():
        skip_foreign_key_checks()
        copy_events(tenant.pk, plan.events(scale.events, "ev-"), account_ids, contact_ids)
    with timed(timings, "rollups_insert_select"), transaction.atomic():
        skip_foreign_key_checks()
        rollups_build(tenant)
    with timed(timings, "configuration"), transaction.atomic():
        configure(tenant)
    return tenant, plan, account_ids, contact_ids
