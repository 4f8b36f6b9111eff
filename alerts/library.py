"""Ready-made segments and alert rules: seed 001's examples, plus the health drop every CSM asks for, an account
left without a champion and the return of a customer who left.

Each entry is the keyword arguments of `segment_create` / `alert_rule_create`,
plus the stage keys its criteria name (seed 001's "onboarding_to_renewal"
stages): a tenant without one of them is told which entries do not fit it
instead of getting rules that can never match.
"""

from django.core.exceptions import ValidationError
from django.db import transaction

from lifecycle.models import Stage

from .models import AlertRule, Segment, Severity, Subject
from .services import alert_rule_create, segment_create

SEGMENTS = [
    {
        "key": "trial_ending_admins",
        "name": "Administrators to call before the trial ends",
        "description": "Administrators of onboarding accounts whose free trial ends within 3 days.",
        "subject": Subject.CONTACT,
        "stages": ["onboarding"],
        "criteria_text": 'stage == "onboarding" and account.trial_ends_at within 3 days '
        'and contact.role == "administrator"',
    },
    {
        "key": "quiet_adopting_users",
        "name": "Adopting users to send the getting-started tutorial",
        "description": "Users of adopting accounts who have not used the product in 30 days.",
        "subject": Subject.CONTACT,
        "stages": ["adopting"],
        "criteria_text": 'stage == "adopting" and contact.role == "user" and contact.metric.events_30d == 0',
    },
]

ALERT_RULES = [
    {
        "key": "card_expiring_in_renewal",
        "name": "Card expires during renewal",
        "description": "The payment card expires within 30 days while the account is up for renewal.",
        "stages": ["renewal"],
        "condition_text": 'stage == "renewal" and account.card_expires_at within 30 days',
        "severity": Severity.CRITICAL,
    },
    {
        "key": "health_dropped",
        "name": "Health dropped 20 points in a week",
        "description": "A sharp fall is worth a look before the account turns red.",
        "stages": [],
        "condition_text": "health.delta_7d <= -20",
        "severity": Severity.WARNING,
    },
    {
        "key": "renewal_at_risk",
        "name": "Renewal at risk",
        "description": "The account is red while its renewal is being decided.",
        "stages": ["renewal"],
        "condition_text": 'stage == "renewal" and health.colour == "red"',
        "severity": Severity.CRITICAL,
    },
    {
        "key": "no_champion",
        "name": "No champion",
        "description": "No contact at an adopting or renewing account has the champion role: the one it had left, "
        "or none was found. Find the next one before the renewal.",
        "stages": ["adopting", "renewal"],
        "condition_text": 'stage in ["adopting", "renewal"] and account.champions == 0',
        "severity": Severity.WARNING,
    },
    {
        "key": "churned_back_in_the_product",
        "name": "A customer who left is back in the product",
        "description": "Someone at an account that churned a week or more ago used the product in the last day: "
        "a chance to win it back.",
        "stages": ["churned"],
        "condition_text": 'stage == "churned" and days_in_stage >= 7 and metric.days_since_last_seen <= 1',
        "severity": Severity.INFO,
        "include_terminal_stages": True,
    },
]


def starters_missing(tenant):
    """`[(create, entry)]`: the library's segments and alert rules the tenant has no key for yet, in library order."""
    missing = []
    for model, create, entries in ((Segment, segment_create, SEGMENTS), (AlertRule, alert_rule_create, ALERT_RULES)):
        existing = set(model.objects.for_tenant(tenant).values_list("key", flat=True))
        missing.extend((create, entry) for entry in entries if entry["key"] not in existing)
    return missing


def starter_alerts_install(*, tenant, actor=None):
    """Create the library's segments and alert rules that the tenant has no key for yet.

    Returns `(created, refused)`: the new objects, and `{key: reason}` for
    entries whose criteria do not fit the tenant (a stage it does not have).
    """
    created, refused = [], {}
    stages = set(Stage.objects.for_tenant(tenant).values_list("key", flat=True))
    for create, entry in starters_missing(tenant):
        missing = [key for key in entry["stages"] if key not in stages]
        if missing:
            refused[entry["key"]] = f"it needs the stage(s) {', '.join(missing)}, which this tenant does not have."
            continue
        fields = {name: value for name, value in entry.items() if name != "stages"}
        try:
            with transaction.atomic():
                created.append(create(tenant=tenant, actor=actor, **fields))
        except ValidationError as error:
            refused[entry["key"]] = " ".join(error.messages)
    return created, refused
