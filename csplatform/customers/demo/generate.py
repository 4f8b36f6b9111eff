"""Demo accounts as plain specs, a pure function of a seeded `random.Random` and a date."""

import datetime as dt
import math
import random
from dataclasses import dataclass, field

from csplatform.customers.models import ContactRole

HISTORY_DAYS = 90
# Share of accounts per pattern; "healthy" takes the rest. Churned is a count
# (about ten at the default size) because backtests need a handful, not a share.
PATTERN_SHARES = {
    "onboarding": 0.08,
    "trial_ending": 0.05,
    "slow_adopter": 0.14,
    "declining": 0.12,
    "dormant": 0.08,
    "renewal_risk": 0.06,
}
CHURNED_PER_300 = 10
# Why customers left, as a CRM's cancellation form records it.
CHURN_REASONS = [
    "Chose a competitor",
    "Budget cut",
    "Never adopted it across the team",
    "Champion left the company",
    "Missing a feature they needed",
]

NAME_STARTS = [
    "Acorn", "Aster", "Atlas", "Beacon", "Birch", "Blue Harbor", "Bright", "Cedar", "Cinder", "Clearwater",
    "Cobalt", "Copper", "Crescent", "Delta", "Ember", "Evergreen", "Falcon", "Fernway", "Foxglove", "Granite",
    "Harbor", "Helix", "Horizon", "Ironwood", "Juniper", "Kestrel", "Lakeside", "Lumen", "Maple", "Meridian",
    "Northwind", "Oakridge", "Orbit", "Pinecrest", "Polaris", "Quarry", "Redwood", "Ridgeline", "Saffron",
    "Silverline", "Summit", "Tidewater", "Trailhead", "Vantage", "Willow", "Zephyr",
]
NAME_ENDS = [
    "Analytics", "Apparel", "Bank", "Biotech", "Capital", "Clinics", "Foods", "Freight", "Games", "Health",
    "Insurance", "Labs", "Learning", "Legal", "Logistics", "Media", "Motors", "Networks", "Robotics",
    "Software", "Studios", "Systems", "Telecom", "Travel",
]
INDUSTRIES = ["software", "retail", "finance", "healthcare", "education", "logistics", "media", "manufacturing"]
TLDS = [".com", ".io", ".co", ".net"]
FIRST_NAMES = [
    "Ada", "Ben", "Carla", "Dev", "Elena", "Felix", "Grace", "Hiro", "Ines", "Jamal", "Kara", "Liam", "Mira",
    "Noah", "Olga", "Pedro", "Quinn", "Rosa", "Sven", "Tara", "Umar", "Vera", "Wes", "Yara", "Zoe",
]
LAST_NAMES = [
    "Adams", "Bauer", "Costa", "Diallo", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen", "Kowalski",
    "Lopez", "Moreau", "Nakamura", "Okafor", "Patel", "Rossi", "Schmidt", "Tanaka", "Usman", "Varga", "Wong",
]
TITLES = {
    ContactRole.ADMINISTRATOR: "IT Manager",
    ContactRole.CHAMPION: "Head of Operations",
    ContactRole.BILLING: "Finance Manager",
    ContactRole.USER: "Analyst",
}
# How often each kind of contact shows up in the product.
ROLE_ACTIVITY = {
    ContactRole.ADMINISTRATOR: 1.0,
    ContactRole.CHAMPION: 1.6,
    ContactRole.USER: 0.8,
    ContactRole.BILLING: 0.05,
}
FEATURES = ["dashboards", "reports", "automations", "exports", "alerts", "sharing", "api", "integrations"]
DAILY_EVENTS = ["login", "feature_used", "report_created", "support_ticket"]
PLAN_WEIGHTS = {"starter": 4, "pro": 4, "enterprise": 2}
PLAN_ACTIVITY = {"trial": 1.0, "starter": 0.8, "pro": 1.1, "enterprise": 1.6}
# Events per contact per active weekday at full usage; keeps ~300 accounts near 100k events.
EVENTS_PER_CONTACT_DAY = 1.0
NPS_SCORES = {
    "healthy": (8, 10),
    "slow_adopter": (6, 8),
    "declining": (2, 6),
    "dormant": (4, 7),
    "renewal_risk": (7, 9),
    "churned": (0, 5),
}


# What the account's owner wrote down, per pattern: (days ago, pinned, text). Contacts are named by role.
NOTES = {
    "onboarding": [
        (2, False, "Kick-off call with {champion}: they want the weekly {feature} review running by the end of "
         "the trial. Next: connect {integration}."),
        (1, False, "Sent the setup checklist to {administrator}; they asked for SSO docs."),
    ],
    "healthy": [
        (60, True, "Champion: {champion}. {billing} signs the renewal; send invoices to them."),
        (21, False, "QBR with {champion}: happy with {feature}, asked whether the API can feed their data team."),
    ],
    "slow_adopter": [
        (30, False, "{champion} says the team is busy with quarter-end; only a few people log in so far."),
        (9, False, "Offered a training session on {feature}; {administrator} will pick a date."),
    ],
    "declining": [
        (40, False, "Good call with {champion}; they rolled out {feature} to a second team."),
        (6, False, "{champion} mentioned budget reviews and a reorg. Usage is falling: follow up in two weeks."),
    ],
    "dormant": [
        (25, False, "{champion} is on leave; {administrator} covers in the meantime."),
        (8, False, "No answer to the last two emails. Trying {administrator} by phone."),
    ],
    "trial_ending": [
        (3, False, "{champion} wants a pricing call before the trial ends; they compare us with two others."),
    ],
    "renewal_risk": [
        (45, True, "Renewal owner: {billing}. The card on file expires before the renewal: ask for new details."),
        (12, False, "Renewal call booked with {billing} and {champion}; bring the usage summary."),
    ],
    "churned": [
        (14, False, "Cancelled: moving to an in-house tool. Exit call: they missed scheduled {feature} exports."),
    ],
}
# About this share of accounts has notes.
NOTED_SHARE = 0.4
# About this share of owned accounts came from another CSM, handed over this many days ago at most.
HANDED_OVER_SHARE = 0.12
HANDOVER_DAYS = 75
# About this share of healthy accounts grew into a bigger contract, and of declining ones cut seats, in the last
# MRR_CHANGE_DAYS: their MRR then was the present one times a factor within these bounds.
MRR_CHANGED_SHARE = 0.4
# About this share of accounts got a new champion in the last CHAMPION_CHANGE_DAYS: their owner recorded that the
# former one is a user now, or, for CHAMPION_LEFT_SHARE of them, removed the former one, who left the customer.
CHAMPION_CHANGED_SHARE = 0.1
CHAMPION_LEFT_SHARE = 0.4
CHAMPION_CHANGE_DAYS = 60
# Every this many customers that left, the first among them, someone signed in again yesterday: a chance to win
# them back.
COMEBACK_EVERY = 3
MRR_CHANGE_DAYS = 85
MRR_BEFORE = {"healthy": (0.5, 0.8), "declining": (1.25, 1.6)}


@dataclass
class NoteSpec:
    written_at: dt.datetime
    pinned: bool
    text: str


@dataclass
class ContactSpec:
    external_id: str
    name: str
    email: str
    title: str
    role: str


@dataclass
class EventSpec:
    contact_index: int
    event: str
    timestamp: dt.datetime
    properties: dict


@dataclass
class HandoverSpec:
    """The account's previous owner (an index into the owners) and when an admin gave it to its owner."""

    previous_owner_index: int
    at: dt.datetime


@dataclass
class MrrChangeSpec:
    """The account's MRR before its present one, and when it changed."""

    previous: int
    at: dt.datetime


@dataclass
class ChampionChangeSpec:
    """Which contact (an index into the contacts, a user now) was the champion before the present one, and when
    the owner recorded the change; or, when `departed` is set, the former champion who left the customer and whom
    the owner removed as a user took over."""

    former_index: int
    at: dt.datetime
    departed: ContactSpec | None = None


@dataclass
class AccountSpec:
    external_id: str
    name: str
    domain: str
    pattern: str
    plan: str
    mrr: int
    signup_date: dt.date
    owner_index: int | None
    trial_ends_at: dt.datetime | None = None
    contract_start: dt.date | None = None
    renewal_date: dt.date | None = None
    card_expires_at: dt.date | None = None
    attributes: dict = field(default_factory=dict)
    contacts: list = field(default_factory=list)
    events: list = field(default_factory=list)
    notes: list = field(default_factory=list)
    handover: HandoverSpec | None = None
    mrr_change: MrrChangeSpec | None = None
    champion_change: ChampionChangeSpec | None = None
    # When the CRM integration added the contacts, on the signup day.
    contacts_added_at: dt.datetime | None = None


def pattern_list(count, rng):
    """`count` pattern names in a seeded random order, every pattern present when count allows."""
    churned = max(1, round(count * CHURNED_PER_300 / 300))
    patterns = ["churned"] * churned
    for name, share in PATTERN_SHARES.items():
        patterns += [name] * max(1, round(count * share))
    patterns = patterns[:count]
    patterns += ["healthy"] * (count - len(patterns))
    rng.shuffle(patterns)
    return patterns


def company_names(count, rng):
    combos = [f"{start} {end}" for start in NAME_STARTS for end in NAME_ENDS]
    if count > len(combos):
        raise ValueError(f"At most {len(combos)} demo accounts per tenant.")
    return rng.sample(combos, count)


def month_end(day):
    following = (day.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
    return following - dt.timedelta(days=1)


def local_datetime(day, zone, rng):
    """A moment during the working day `day` in `zone`."""
    naive = dt.datetime.combine(day, dt.time(rng.randint(8, 18), rng.randint(0, 59), rng.randint(0, 59)))
    return naive.replace(tzinfo=zone)


def poisson(rng, lam):
    """A Poisson draw (Knuth); the rates here are small enough for it."""
    if lam <= 0:
        return 0
    threshold, k, p = math.exp(-lam), 0, rng.random()
    while p > threshold:
        k += 1
        p *= rng.random()
    return k


def usage_level(pattern, days_ago, spec, today):
    """How active the account is `days_ago` days before today, 0 (silent) to about 1.5."""
    day = today - dt.timedelta(days=days_ago)
    if day < spec.signup_date:
        return 0.0
    if pattern == "healthy":
        return 0.5 + 0.9 * (HISTORY_DAYS - days_ago) / HISTORY_DAYS
    if pattern == "slow_adopter":
        return 0.2
    if pattern == "declining":
        return 1.0 if days_ago > 30 else 0.05 + 0.95 * days_ago / 30
    if pattern == "dormant":
        return 0.7 if day < spec.attributes["_quiet_since"] else 0.0
    if pattern == "churned":
        churned_at = dt.date.fromisoformat(spec.attributes["churned_at"])
        if day >= churned_at:
            return 0.0
        return min(0.9, 0.1 + 0.8 * (churned_at - day).days / 30)
    if pattern == "onboarding":
        return 0.4
    if pattern == "trial_ending":
        return 0.6
    return 0.8  # renewal_risk: steady use, the risk is the card


def plan_and_dates(spec, rng, today, zone):
    """Set plan, MRR and the commercial dates the pattern calls for."""
    pattern = spec.pattern
    if pattern in ("onboarding", "trial_ending"):
        spec.plan, spec.mrr = "trial", 0
        if pattern == "onboarding":
            spec.signup_date = today - dt.timedelta(days=rng.randint(2, 14))
            trial_end_day = spec.signup_date + dt.timedelta(days=30)
        else:
            trial_end_day = today + dt.timedelta(days=rng.randint(1, 6))
            spec.signup_date = trial_end_day - dt.timedelta(days=14)
        spec.trial_ends_at = dt.datetime.combine(trial_end_day, dt.time(12), tzinfo=zone)
        return
    spec.plan = rng.choices(list(PLAN_WEIGHTS), weights=list(PLAN_WEIGHTS.values()))[0]
    spec.mrr = {
        "starter": rng.choice([49, 99, 149, 199, 299]),
        "pro": rng.randrange(400, 2001, 50),
        "enterprise": rng.randrange(2500, 15001, 500),
    }[spec.plan]
    if pattern == "renewal_risk":
        spec.renewal_date = today + dt.timedelta(days=rng.randint(7, 60))
    elif pattern == "slow_adopter":
        spec.renewal_date = today - dt.timedelta(days=rng.randint(40, 85)) + dt.timedelta(days=365)
    else:
        spec.renewal_date = today + dt.timedelta(days=rng.randint(1, 364))
    spec.contract_start = spec.renewal_date - dt.timedelta(days=365)
    spec.signup_date = spec.contract_start - dt.timedelta(days=rng.randint(0, 30))
    if pattern != "slow_adopter" and spec.signup_date > today - dt.timedelta(days=HISTORY_DAYS + 5):
        spec.signup_date -= dt.timedelta(days=365)
    if pattern == "renewal_risk":
        expiry = month_end(today + dt.timedelta(days=rng.randint(0, (spec.renewal_date - today).days - 1)))
        spec.card_expires_at = expiry if expiry < spec.renewal_date else spec.renewal_date - dt.timedelta(days=1)
    else:
        spec.card_expires_at = month_end(spec.renewal_date + dt.timedelta(days=rng.randint(60, 900)))
    if pattern == "churned":
        # Within the last month: the seeded history then holds the two months before the churn that
        # usage trends compare, so health had its chance to see it coming.
        churned_at = today - dt.timedelta(days=rng.randint(15, 30))
        spec.attributes["churned_at"] = churned_at.isoformat()
        # Drawn apart from `rng`, so that the accounts after this one stay as they were.
        spec.attributes["churn_reason"] = random.Random(spec.name).choice(CHURN_REASONS)
        spec.renewal_date = churned_at
        spec.card_expires_at = None
        # Billing stopped the day after it left: its MRR fell to zero at noon.
        stopped = dt.datetime.combine(churned_at + dt.timedelta(days=1), dt.time(12), tzinfo=zone)
        spec.mrr_change = MrrChangeSpec(spec.mrr, stopped)
        spec.mrr = 0
    elif pattern == "dormant":
        spec.attributes["_quiet_since"] = today - dt.timedelta(days=rng.randint(21, 60))


def contacts_for(spec, rng):
    roles = [ContactRole.ADMINISTRATOR, ContactRole.CHAMPION, ContactRole.BILLING]
    roles += [ContactRole.USER] * (rng.randint(3, 8) - len(roles))
    people = rng.sample([(first, last) for first in FIRST_NAMES for last in LAST_NAMES], len(roles))
    return [
        ContactSpec(
            external_id=f"{spec.external_id}-c{index + 1}",
            name=f"{first} {last}",
            email=f"{first.lower()}.{last.lower()}@{spec.domain}",
            title=TITLES[role],
            role=role,
        )
        for index, (role, (first, last)) in enumerate(zip(roles, people))
    ]


def notes_for(spec, today, zone):
    """The owner's notes on some accounts, from a random source of their own so the rest of the demo stays as it is."""
    rng = random.Random(f"{spec.external_id}:notes")
    if rng.random() >= NOTED_SHARE:
        return []
    names = {contact.role: contact.name for contact in spec.contacts}
    words = {
        "champion": names[ContactRole.CHAMPION],
        "administrator": names[ContactRole.ADMINISTRATOR],
        "billing": names[ContactRole.BILLING],
        "feature": rng.choice(FEATURES),
        "integration": rng.choice(["Salesforce", "HubSpot", "Slack"]),
    }
    # Written on a past working day, and not before the account signed up.
    oldest = (today - spec.signup_date).days
    return [
        NoteSpec(local_datetime(today - dt.timedelta(days=max(1, min(days_ago, oldest))), zone, rng), pinned,
                 text.format(**words))
        for days_ago, pinned, text in NOTES.get(spec.pattern, [])
    ]


def handover_for(spec, owners, today, zone):
    """Whether another CSM owned the account before, from a random source of its own as for the notes."""
    rng = random.Random(f"{spec.external_id}:handover")
    oldest = min(HANDOVER_DAYS, (today - spec.signup_date).days)
    if spec.owner_index is None or owners < 2 or oldest < 1 or rng.random() >= HANDED_OVER_SHARE:
        return None
    previous = rng.choice([index for index in range(owners) if index != spec.owner_index])
    days_ago = rng.randint(1, oldest)
    return HandoverSpec(previous, local_datetime(today - dt.timedelta(days=days_ago), zone, rng))


def mrr_change_for(spec, today, zone):
    """Whether a healthy account grew or a declining one shrank lately, from a random source of its own as for
    the notes."""
    rng = random.Random(f"{spec.external_id}:mrr")
    oldest = min(MRR_CHANGE_DAYS, (today - spec.signup_date).days)
    if spec.pattern not in MRR_BEFORE or not spec.mrr or oldest < 1 or rng.random() >= MRR_CHANGED_SHARE:
        return None
    previous = round(spec.mrr * rng.uniform(*MRR_BEFORE[spec.pattern]), -1)
    day = today - dt.timedelta(days=rng.randint(1, oldest))
    return MrrChangeSpec(previous, local_datetime(day, zone, rng)) if previous != spec.mrr else None


def champion_change_for(spec, today, zone):
    """Whether the account's champion took over from another contact lately, from a random source of its own as
    for the notes."""
    rng = random.Random(f"{spec.external_id}:champion")
    oldest = min(CHAMPION_CHANGE_DAYS, (today - spec.signup_date).days)
    users = [index for index, contact in enumerate(spec.contacts) if contact.role == ContactRole.USER]
    if spec.pattern == "churned" or spec.owner_index is None or not users or oldest < 1:
        return None
    if rng.random() >= CHAMPION_CHANGED_SHARE:
        return None
    day = today - dt.timedelta(days=rng.randint(1, oldest))
    change = ChampionChangeSpec(rng.choice(users), local_datetime(day, zone, rng))
    if rng.random() < CHAMPION_LEFT_SHARE:
        taken = {contact.name for contact in spec.contacts}
        first, last = rng.choice([(f, la) for f in FIRST_NAMES for la in LAST_NAMES if f"{f} {la}" not in taken])
        change.departed = ContactSpec(
            external_id=f"{spec.external_id}-c0",
            name=f"{first} {last}",
            email=f"{first.lower()}.{last.lower()}@{spec.domain}",
            title=TITLES[ContactRole.CHAMPION],
            role=ContactRole.CHAMPION,
        )
    return change


def comeback_login(spec, today, zone):
    """A login yesterday by one of the users of a customer that left, from a random source of its own as for
    the notes."""
    rng = random.Random(f"{spec.external_id}:comeback")
    users = [index for index, contact in enumerate(spec.contacts) if contact.role == ContactRole.USER]
    yesterday = today - dt.timedelta(days=1)
    return EventSpec(rng.choice(users or [0]), "login", local_datetime(yesterday, zone, rng), {})


def events_for(spec, rng, today, zone):
    """90 days of events shaped by the account's pattern, oldest first."""
    weights = [ROLE_ACTIVITY[c.role] for c in spec.contacts]
    indexes = list(range(len(spec.contacts)))
    features = FEATURES[: 2 if spec.pattern == "slow_adopter" else len(FEATURES)]
    trouble = spec.pattern in ("declining", "dormant", "churned")
    mix = [0.45, 0.38, 0.13, 0.04 if trouble else 0.01]
    rate = len(spec.contacts) * EVENTS_PER_CONTACT_DAY * PLAN_ACTIVITY[spec.plan] * rng.uniform(0.7, 1.3)
    events = []
    first_active = max(spec.signup_date, today - dt.timedelta(days=HISTORY_DAYS))
    # Setup: invites and an integration in the first days after signup; older
    # accounts keep inviting people early in the window (before any churn).
    onboarding = spec.pattern == "onboarding"
    setup_count = rng.randint(1, 2) if onboarding else rng.randint(2, 5)
    for number in range(setup_count):
        offset = number if onboarding or spec.signup_date >= first_active else rng.randint(0, 10)
        day = min(first_active + dt.timedelta(days=offset), today - dt.timedelta(days=1))
        name = "integration_connected" if number == 1 else "invite_sent"
        properties = {"integration": rng.choice(["salesforce", "hubspot", "slack"])} if number == 1 else {}
        events.append(EventSpec(0, name, local_datetime(day, zone, rng), properties))
    nps_low, nps_high = NPS_SCORES.get(spec.pattern, (0, 0))
    for days_ago in range(HISTORY_DAYS, 0, -1):
        level = usage_level(spec.pattern, days_ago, spec, today)
        if not level:
            continue
        day = today - dt.timedelta(days=days_ago)
        weekend = day.weekday() >= 5
        for _ in range(poisson(rng, rate * level * (0.25 if weekend else 1.0))):
            name = rng.choices(DAILY_EVENTS, weights=mix)[0]
            contact_index = rng.choices(indexes, weights=weights)[0]
            properties = {"feature": rng.choice(features)} if name == "feature_used" else {}
            events.append(EventSpec(contact_index, name, local_datetime(day, zone, rng), properties))
        # Paying customers answer an NPS survey now and then.
        if nps_high and days_ago % 30 == 7 and not weekend:
            properties = {"score": rng.randint(nps_low, nps_high)}
            contact_index = rng.choices(indexes, weights=weights)[0]
            events.append(EventSpec(contact_index, "nps.answered", local_datetime(day, zone, rng), properties))
    events.sort(key=lambda e: e.timestamp)
    return events


def build_accounts(rng, *, count, today, zone, owners):
    """Plain specs for `count` accounts owned by indexes into a list of `owners` users."""
    specs = []
    for number, (name, pattern) in enumerate(zip(company_names(count, rng), pattern_list(count, rng)), start=1):
        slug = name.lower().replace(" ", "")
        spec = AccountSpec(
            external_id=f"cus_{number:04d}{rng.getrandbits(24):06x}",
            name=name,
            domain=slug + rng.choice(TLDS),
            pattern=pattern,
            plan="",
            mrr=0,
            signup_date=today,
            # About one account in twenty waits for an owner.
            owner_index=None if rng.random() < 0.05 else rng.randrange(owners),
            attributes={
                "demo_pattern": pattern,
                "industry": rng.choice(INDUSTRIES),
                "employees": rng.choice([12, 25, 40, 80, 150, 300, 750, 2000]),
            },
        )
        plan_and_dates(spec, rng, today, zone)
        spec.contacts = contacts_for(spec, rng)
        spec.events = events_for(spec, rng, today, zone)
        spec.notes = notes_for(spec, today, zone)
        spec.handover = handover_for(spec, owners, today, zone)
        spec.mrr_change = spec.mrr_change or mrr_change_for(spec, today, zone)
        spec.champion_change = champion_change_for(spec, today, zone)
        # A random source of its own, as for the notes, so the rest of the data stays as it was.
        spec.contacts_added_at = local_datetime(spec.signup_date, zone, random.Random(f"{spec.external_id}:added"))
        spec.attributes.pop("_quiet_since", None)
        specs.append(spec)
    for spec in [spec for spec in specs if spec.pattern == "churned"][::COMEBACK_EVERY]:
        spec.events.append(comeback_login(spec, today, zone))
    return specs


