"""What a playbook would have done over the last days, replayed from history; sends nothing."""

import datetime as dt

from django.core.exceptions import ValidationError
from django.utils import timezone

from csplatform.customers.models import Account, UsageEvent
from csplatform.rules import CriteriaError, load_criteria

from .models import EnrollmentPolicy, StepKind, TriggerType
from .rendering import TemplateError, render, render_context
from .scheduling import next_business_time, zone_of
from .services import date_window, playbook_steps
from .steps import (
    CUSTOMER_FACING,
    contacts_with_email,
    email_template,
    faces_customer,
    left_out,
    primary_contact,
    subscribed,
)

MAX_ENROLMENTS = 500


def _history(tenant, playbook, since, now):
    """(account id, moment) pairs at which the trigger fired, oldest first."""
    config, kind = playbook.trigger_config, playbook.trigger_type
    if kind in (TriggerType.STAGE_ENTERED, TriggerType.STAGE_LEFT):
        from lifecycle.models import StageTransition

        lookup = "to_key" if kind == TriggerType.STAGE_ENTERED else "from_key"
        rows = StageTransition.objects.for_tenant(tenant).filter(
            at__gte=since, at__lte=now, **{lookup: config["stage"]}
        )
        return list(rows.order_by("at", "id").values_list("account_id", "at"))
    if kind in (TriggerType.HEALTH_BELOW, TriggerType.HEALTH_ABOVE, TriggerType.HEALTH_COLOUR_CHANGED):
        return _health_crossings(tenant, kind, config, since, now)
    if kind == TriggerType.EVENT_RECEIVED:
        rows = UsageEvent.objects.for_tenant(tenant).filter(
            event=config["event"], timestamp__gte=since, timestamp__lte=now
        )
        return list(rows.order_by("timestamp").values_list("account_id", "timestamp"))
    if kind == TriggerType.DATE_RELATIVE:
        moments = []
        day = since
        while day <= now:
            ids = Account.objects.for_tenant(tenant).filter(
                date_window(tenant, config["field"], config["days_before"], day)
            )
            moments.extend((pk, day) for pk in ids.values_list("pk", flat=True))
            day += dt.timedelta(days=1)
        return moments
    if kind == TriggerType.SEGMENT_ENTERED:
        from alerts.models import SegmentMembership

        rows = SegmentMembership.objects.for_tenant(tenant).filter(
            segment__key=config["segment"], entered_at__gte=since, entered_at__lte=now
        )
        return list(rows.order_by("entered_at").values_list("account_id", "entered_at"))
    return []


def _health_crossings(tenant, kind, config, since, now):
    from health.models import HealthSnapshot

    zone = zone_of(tenant)
    rows = (
        HealthSnapshot.objects.for_tenant(tenant)
        .filter(day__gte=since.astimezone(zone).date() - dt.timedelta(days=1), day__lte=now.astimezone(zone).date())
        .order_by("account_id", "day")
        .values_list("account_id", "day", "score", "colour")
    )

    def fires(score, colour):
        if kind == TriggerType.HEALTH_BELOW:
            return score is not None and score < config["value"]
        if kind == TriggerType.HEALTH_ABOVE:
            return score is not None and score > config["value"]
        return colour == config["colour"]

    moments, previous = [], {}
    for account_id, day, score, colour in rows:
        before = previous.get(account_id)
        if before is not None and fires(score, colour) and not fires(*before):
            moments.append((account_id, dt.datetime.combine(day, dt.time(0), tzinfo=zone)))
        previous[account_id] = (score, colour)
    return sorted(moments, key=lambda item: item[1])


def _while_customers(tenant, playbook, history):
    """The trigger history without the moments an account had already left (it is in a terminal stage since
    before then), as the live enrolment leaves departed customers to playbooks started by a stage."""
    if playbook.trigger_type in (TriggerType.STAGE_ENTERED, TriggerType.STAGE_LEFT):
        return history
    left_at = dict(Account.objects.for_tenant(tenant).departed().values_list("pk", "lifecycle__entered_at"))
    return [(account_id, moment) for account_id, moment in history if left_at.get(account_id, moment) >= moment]


def _enrolments(playbook, history):
    """Apply the re-enrolment policy to the trigger history."""
    last = {}
    kept = []
    for account_id, moment in history:
        if account_id in last:
            if playbook.enrollment_policy == EnrollmentPolicy.ONCE:
                continue
            if moment - last[account_id] < dt.timedelta(days=playbook.again_after_days or 0):
                continue
        last[account_id] = moment
        kept.append((account_id, moment))
    return kept


def _addressed(audience, contacts, now):
    """Whom a customer-facing step is for, as StepContext.addressed picks them (audience read as of now)."""
    if audience is None:
        primary = primary_contact(contacts)
        return [primary] if primary else []
    return [contact for contact in contacts if audience.matches(contact, now=now)]


def _describe(step, account, recipients, unsubscribed):
    config = step.config
    if step.kind in (StepKind.SEND_EMAIL, StepKind.NPS_SURVEY, StepKind.SCHEDULE_DEMO):
        if step.kind == StepKind.SCHEDULE_DEMO:
            recipients = recipients[:1]
        variables = render_context(account=account, contact=(recipients or [None])[0], owner=account.owner)
        source = config.get("subject") or ""
        if step.kind == StepKind.SCHEDULE_DEMO and not source:
            source = email_template("demo_invitation_subject.txt")
        try:
            subject = " ".join(render(source, variables).split())
        except TemplateError as exc:
            subject = f"(does not render: {exc})"
        described = {"to": [contact.email for contact in recipients], "subject": subject or step.get_kind_display()}
        if unsubscribed:
            described["unsubscribed"] = [contact.email for contact in unsubscribed]
        return described
    if step.kind == StepKind.USAGE_CHECK:
        return {"criteria": config["criteria"], "on_fail": config["on_fail"]["action"]}
    if step.kind == StepKind.CREATE_TASK:
        return {"title": config["title"]}
    return {}


def simulate(*, tenant, playbook, steps=None, days=90, now=None):
    """Who would have been enrolled in the last `days` days, and each step's action and time.

    `steps` simulates a definition not saved (see playbook_draft); without
    them, the playbook's saved steps. Stage-based runs stop where the
    account left the trigger stage before a step was due, as a real run
    would. Usage checks report the criteria; their outcome depends on the
    data at the time and is not replayed. Contacts and the audience are
    read as they are now.
    """
    from lifecycle.models import StageTransition

    now = now or timezone.now()
    since = now - dt.timedelta(days=days)
    steps = playbook_steps(tenant, playbook) if steps is None else steps
    history = _while_customers(tenant, playbook, _history(tenant, playbook, since, now))
    enrolments = _enrolments(playbook, history)[:MAX_ENROLMENTS]
    accounts = Account.objects.for_tenant(tenant).select_related("owner").in_bulk({pk for pk, _ in enrolments})
    try:
        audience = load_criteria(playbook.audience, subject="contact", tenant=tenant) if playbook.audience else None
    except CriteriaError as exc:
        # Saved criteria can outlive what they read (a metric deleted since).
        raise ValidationError({"audience_text": f"The audience no longer applies: {exc}"}) from None
    contacts = {pk: [] for pk in accounts}
    for contact in contacts_with_email(tenant).filter(account__in=accounts).order_by("pk"):
        # The account is at hand: an audience reading account fields costs no query per contact.
        contact.account = accounts[contact.account_id]
        contacts[contact.account_id].append(contact)
    addressed = {pk: _addressed(audience, found, now) for pk, found in contacts.items()}
    leaves = {}
    if playbook.trigger_type == TriggerType.STAGE_ENTERED:
        for account_id, at in (
            StageTransition.objects.for_tenant(tenant)
            .filter(account_id__in=accounts, from_key=playbook.trigger_config["stage"], at__gte=since)
            .values_list("account_id", "at")
        ):
            leaves.setdefault(account_id, []).append(at)
    report = []
    for account_id, enrolled_at in enrolments:
        account = accounts[account_id]
        recipients = subscribed(addressed[account_id])
        unsubscribed = left_out(addressed[account_id])
        moment, actions, exited = enrolled_at, [], ""
        for step in steps:
            moment += dt.timedelta(minutes=step.delay_minutes)
            if faces_customer(step):
                moment = next_business_time(moment, zone_of(tenant, (recipients or [None])[0]))
            if any(enrolled_at < left <= moment for left in leaves.get(account_id, [])):
                exited = f"Left the {playbook.trigger_config['stage']} stage before step {step.position}."
                break
            actions.append(
                {
                    "position": step.position,
                    "kind": step.kind,
                    "at": moment.isoformat(),
                    "future": moment > now,
                    **_describe(step, account, recipients, unsubscribed),
                }
            )
        report.append(
            {
                "account": {"id": account.pk, "name": account.name},
                "enrolled_at": enrolled_at.isoformat(),
                "steps": actions,
                "exited": exited,
            }
        )
    return {
        "days": days,
        "enrolled": len(report),
        "runs": report,
        "emails": sum(len(a.get("to", ())) for run in report for a in run["steps"] if a["kind"] in CUSTOMER_FACING),
    }
