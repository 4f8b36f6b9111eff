"""What each step kind does. Executors run inside the step's transaction and
record their side effects under keys derived from the StepRun id, so running
a step again finds what the first run made instead of making it twice."""

import datetime as dt
from functools import cached_property
from pathlib import Path

from django.conf import settings
from django.db import transaction
from django.urls import NoReverseMatch, reverse
from django.utils.html import escape

from alerts.services import alert_raise
from alerts.webhooks import account_payload, webhook_emit
from csplatform.customers.models import Account, Contact, ContactRole
from csplatform.rules import CriteriaError, load_criteria
from csplatform.tenancy.models import Membership

from .ics import invitation_ics
from .mail import sender
from .models import EmailStatus, ExpansionOpportunity, OutboundEmail, StepKind, Task
from .nps import nps_token
from .rendering import TemplateError, render, render_context
from .scheduling import demo_slot, next_business_time, working_hours, zone_of
from .services import task_create_once

CUSTOMER_FACING = {StepKind.SEND_EMAIL, StepKind.SCHEDULE_DEMO, StepKind.NPS_SURVEY}
# Without an audience, a step writes to the first of these, else to the first contact.
LEADING_ROLES = (ContactRole.ADMINISTRATOR, ContactRole.CHAMPION)
EMAIL_TEMPLATES_DIR = Path(settings.BASE_DIR) / "templates" / "emails"


def faces_customer(step):
    """Steps that reach the customer wait for business hours, unless configured to send at any hour."""
    if not step.config.get("quiet_hours", True):
        return False
    if step.kind == StepKind.USAGE_CHECK:
        return step.config["on_fail"]["action"] == "send_email"
    return step.kind in CUSTOMER_FACING


class PermanentStepError(Exception):
    """The step cannot succeed by trying again (bad template, missing stage...)."""


def email_template(name):
    return (EMAIL_TEMPLATES_DIR / name).read_text()


class BatchFacts:
    """What the steps of one tenant's batch read about their accounts, loaded in a few queries.

    Loaded inside the batch's transaction after its runs are locked, so the
    emails found are every email these steps made before: an email not
    among them can be inserted without a second look.
    """

    def __init__(self, *, tenant, step_runs):
        from health.models import HealthScore
        from lifecycle.models import AccountStage

        self.tenant = tenant
        account_ids = {step_run.run.account_id for step_run in step_runs}
        self.loaded = set(account_ids)
        self.states = {
            state.account_id: state
            for state in AccountStage.objects.for_tenant(tenant).select_related("stage").filter(account__in=account_ids)
        }
        self.health = {
            score.account_id: score for score in HealthScore.objects.for_tenant(tenant).filter(account__in=account_ids)
        }
        self.contacts = {account_id: [] for account_id in account_ids}
        for contact in contacts_with_email(tenant).filter(account__in=account_ids).order_by("pk"):
            self.contacts[contact.account_id].append(contact)
        made = OutboundEmail.objects.for_tenant(tenant).filter(step_run__in=[step_run.pk for step_run in step_runs])
        self.emails = {email.idempotency_key: email for email in made}
        # The emails the batch's steps make, inserted together once every step is prepared.
        self.unsaved = []
        # The working hours of the owners a demo slot is proposed for (an empty `__in` sends no query).
        owner_ids = {
            step_run.run.account.owner_id for step_run in step_runs if step_run.step.kind == StepKind.SCHEDULE_DEMO
        } - {None}
        self.memberships = {
            membership.user_id: membership
            for membership in Membership.objects.for_tenant(tenant).filter(user__in=owner_ids)
        }

    def stage_changed(self, account_id):
        """A step moved the account: the steps after it read its stage afresh."""
        self.loaded.discard(account_id)

    def emails_forget(self, step_run):
        """A step that failed alone made no emails: its savepoint rolled back, and so do they."""
        for email in [email for email in self.unsaved if email.step_run_id == step_run.pk]:
            self.unsaved.remove(email)
            del self.emails[email.idempotency_key]

    def emails_insert(self):
        OutboundEmail.objects.for_tenant(self.tenant).bulk_create(self.unsaved)
        self.unsaved = []


def contacts_with_email(tenant):
    """Contacts a step could write to, unsubscribed ones included: a step records whom it left out."""
    return Contact.objects.for_tenant(tenant).exclude(email="")


def primary_contact(contacts):
    """Whom a step without an audience writes to: the first of `contacts` in a leading role, else the first."""
    leaders = [contact for contact in contacts if contact.role in LEADING_ROLES]
    return (leaders or contacts or [None])[0]


def subscribed(contacts):
    return [contact for contact in contacts if not contact.unsubscribed]


def left_out(contacts):
    """The unsubscribed ones, whom a step records instead of writing to."""
    return [contact for contact in contacts if contact.unsubscribed]


class StepContext:
    def __init__(self, *, step_run, now, facts):
        self.step_run = step_run
        self.run = step_run.run
        self.step = step_run.step
        self.config = step_run.step.config
        self.playbook = self.run.playbook
        self.tenant = step_run.tenant
        self.account = self.run.account
        self.owner = self.account.owner
        self.now = now
        self.facts = facts
        self._state = None
        self._addressing = False

    @property
    def state(self):
        """Where the account is in the lifecycle (its AccountStage), or None before its first placement."""
        if self._state is None:
            if self.account.pk in self.facts.loaded:
                self._state = self.facts.states.get(self.account.pk) or False
            else:
                from lifecycle.models import AccountStage

                state = (
                    AccountStage.objects.for_tenant(self.tenant)
                    .select_related("stage")
                    .filter(account=self.account)
                    .first()
                )
                self._state = state or False
        return self._state or None

    @property
    def stage(self):
        return self.state.stage if self.state else None

    def health(self):
        return self.facts.health.get(self.account.pk)

    def account_matches(self, criteria_json):
        criteria = load_criteria(criteria_json, subject="account", tenant=self.tenant)
        return criteria.filter(
            Account.objects.for_tenant(self.tenant).filter(pk=self.account.pk), now=self.now
        ).exists()

    def exit_reason(self):
        """Why the run must stop before this step, or ''."""
        key = self.run.trigger_stage_key
        if key and (self.stage is None or self.stage.key != key):
            return f"The account left the {key} stage."
        # A run started for a customer who had left already (by hand, or by entering Churned) goes on.
        state = self.state
        if state and state.stage.is_terminal and state.stage.key != key and state.entered_at > self.run.started_at:
            return f"The customer left: the account moved to {state.stage.name}."
        if self.playbook.exit_criteria:
            try:
                if self.account_matches(self.playbook.exit_criteria):
                    return f"Exit criteria hold: {self.playbook.exit_criteria_text}"
            except CriteriaError as exc:
                raise PermanentStepError(f"The exit criteria no longer compile: {exc}") from exc
        return ""

    @cached_property
    def audience(self):
        """The contacts matching the playbook's audience, else the primary contact; unsubscribed or not.

        Read once per step: the business-hours check and the step itself share it.
        """
        if self.playbook.audience:
            try:
                criteria = load_criteria(self.playbook.audience, subject="contact", tenant=self.tenant)
            except CriteriaError as exc:
                raise PermanentStepError(f"The audience no longer compiles: {exc}") from exc
            contacts = contacts_with_email(self.tenant).filter(account=self.account)
            return list(criteria.filter(contacts, now=self.now).order_by("pk"))
        primary = primary_contact(self.facts.contacts[self.account.pk])
        return [primary] if primary else []

    def addressed(self):
        """Whom the step writes to, unsubscribed contacts included so that it records them as left out.

        An unsubscribed primary contact means the step writes to nobody,
        never to another contact in their place.
        """
        self._addressing = True
        return self.audience

    def recipients(self):
        return subscribed(self.addressed())

    def unsubscribed(self):
        """The contacts the step addressed and left out: none while it has addressed nobody."""
        return left_out(self.audience) if self._addressing else []

    def business_time(self):
        """When this customer-facing step may run: now in business hours, else the next opening."""
        # Not addressing anyone yet: a usage check that passes writes to nobody and records no one as left out.
        contacts = subscribed(self.audience)
        zone = zone_of(self.tenant, contacts[0] if contacts else None)
        return next_business_time(self.now, zone)

    def variables(self, contact=None):
        return render_context(
            account=self.account, contact=contact, owner=self.owner, stage=self.stage, health=self.health()
        )

    def render(self, source, contact=None, *, html=False):
        try:
            return render(source, self.variables(contact), html=html)
        except TemplateError as exc:
            raise PermanentStepError(f"Step {self.step.position}: the template does not render: {exc}") from exc

    def email_once(
        self,
        *,
        contact,
        subject,
        text,
        html="",
        attachments=(),
        purpose="email",
        review=False,
        text_suffix="",
        html_suffix="",
    ):
        """The email of this step for this contact, made the first time only (the batch's facts hold earlier ones).

        A new email is inserted with the batch's others once all its steps
        are prepared, so an outcome names its emails as these objects and the
        runner stores their ids once they are inserted.
        The suffixes are appended after rendering (links the platform made).
        An unsubscribed contact's email is stored as not sent, so the CSM
        sees whom the step left out and what they would have received.
        """
        key = f"steprun:{self.step_run.pk}:{purpose}:{contact.pk}"
        email = self.facts.emails.get(key)
        if email is None:
            text = self.render(text, contact) + text_suffix
            html = self.render(html, contact, html=True) + html_suffix if (html or html_suffix) else ""
            email = OutboundEmail(
                idempotency_key=key,
                tenant=self.tenant,
                account=self.account,
                contact=contact,
                step_run=self.step_run,
                owner=self.owner,
                to_email=contact.email,
                # A subject is one header line, whatever the template's line breaks.
                subject=" ".join(self.render(subject, contact).split())[:500],
                text=text,
                html=html,
                from_email=sender(self.owner),
                reply_to=self.owner.email if self.owner else "",
                attachments=list(attachments),
                status=(
                    EmailStatus.UNSUBSCRIBED
                    if contact.unsubscribed
                    else EmailStatus.PENDING_REVIEW if review else EmailStatus.QUEUED
                ),
            )
            self.facts.emails[key] = email
            self.facts.unsaved.append(email)
        return email

    def task_once(self, *, title, due_in_days, purpose="task", description="", due_at=None):
        return task_create_once(
            tenant=self.tenant,
            key=f"steprun:{self.step_run.pk}:{purpose}",
            account=self.account,
            owner=self.owner,
            title=self.render(title),
            description=self.render(description),
            due_at=due_at or self.now + dt.timedelta(days=due_in_days),
            source=f"playbook:{self.playbook.key}",
        )

    def webhook(self, event_type, payload, purpose):
        return webhook_emit(
            tenant=self.tenant,
            event_type=event_type,
            payload=payload,
            idempotency_key=f"steprun:{self.step_run.pk}:{purpose}",
        )

    def payload(self):
        return {
            "playbook": {"key": self.playbook.key, "name": self.playbook.name},
            "run": self.run.pk,
            "step": {"position": self.step.position, "kind": self.step.kind},
            "account": account_payload(self.account),
        }


def send_email(context):
    emails = [
        context.email_once(
            contact=contact,
            subject=context.config["subject"],
            text=context.config["text"],
            html=context.config.get("html", ""),
            review=context.config.get("requires_review", False),
        )
        for contact in context.addressed()
    ]
    return {"emails": emails, "recipients": [c.email for c in context.recipients()]}


def schedule_demo(context):
    """Propose a slot in the owner's working hours, invite the contact with an .ics and give the CSM a task."""
    config = context.config
    recipients = context.recipients()
    if not recipients:
        return {"skipped": "No contact to invite."}
    contact = recipients[0]
    # An invitation sent before, by a run of this step that did not finish: the batch's facts hold it.
    existing = next((email for email in context.facts.emails.values() if email.step_run_id == context.step_run.pk), None)
    if existing is not None:
        return {"emails": [existing], "slot": existing.attachments[0].get("slot") if existing.attachments else None}
    owner = context.owner
    zone, hours, workdays = working_hours(context.tenant, context.facts.memberships.get(owner.pk) if owner else None)
    duration = config["duration_minutes"]
    busy = (
        [
            (due, due + dt.timedelta(minutes=duration))
            for due in Task.objects.for_tenant(context.tenant)
            .filter(owner=context.owner, completed_at__isnull=True, source__startswith="demo:", due_at__isnull=False)
            .values_list("due_at", flat=True)
        ]
        if context.owner
        else []
    )
    start, end = demo_slot(
        now=context.now,
        zone=zone,
        days_ahead=config["days_ahead"],
        duration_minutes=duration,
        busy=busy,
        hours=hours,
        workdays=workdays,
    )
    title = context.render(config.get("title") or "Personalised demo", contact)
    ics = invitation_ics(
        uid=f"steprun-{context.step_run.pk}@csplatform",
        start=start,
        end=end,
        summary=f"{title}: {context.account.name}",
        description=f"A personalised demo of the product for {context.account.name}.",
        organizer_email=owner.email if owner else settings.DEFAULT_FROM_EMAIL,
        organizer_name=owner.name if owner else "",
        attendee_email=contact.email,
        attendee_name=contact.name,
        now=context.now,
    )
    local = start.astimezone(zone)
    slot_text = f"{local:%A %d %B %Y, %H:%M} ({zone.key}), {duration} minutes"
    email = context.email_once(
        contact=contact,
        purpose="demo",
        subject=config.get("subject") or email_template("demo_invitation_subject.txt"),
        text=(config.get("text") or email_template("demo_invitation.txt")).replace("[[slot]]", slot_text),
        html=(config.get("html") or email_template("demo_invitation.html")).replace("[[slot]]", slot_text),
        attachments=[
            {
                "filename": "invite.ics",
                "content": ics,
                "mimetype": "text/calendar; method=REQUEST",
                "slot": start.isoformat(),
            }
        ],
    )
    task = task_create_once(
        tenant=context.tenant,
        key=f"steprun:{context.step_run.pk}:demo",
        account=context.account,
        owner=owner,
        title=f"Demo with {contact.name or contact.email} ({context.account.name})",
        due_at=start,
        description=f"{slot_text}. Invitation sent to {contact.email}.",
        source=f"demo:{context.playbook.key}",
    )
    return {"emails": [email], "task": task.pk, "slot": start.isoformat()}


def usage_check(context):
    config = context.config
    try:
        passed = context.account_matches(config["criteria_json"])
    except CriteriaError as exc:
        raise PermanentStepError(f"The usage criteria no longer compile: {exc}") from exc
    if passed:
        outcome = {"passed": True, "criteria": config["criteria"]}
        if config["on_pass"] == "end":
            outcome.update(end=True, reason="Usage check passed.")
        return outcome
    on_fail = config["on_fail"]
    outcome = {"passed": False, "criteria": config["criteria"], "action": on_fail["action"]}
    if on_fail["action"] == "create_task":
        outcome["task"] = context.task_once(title=on_fail["title"], due_in_days=on_fail["due_in_days"]).pk
    elif on_fail["action"] == "raise_alert":
        alert = alert_raise(
            tenant=context.tenant,
            account=context.account,
            title=context.render(on_fail["title"]),
            severity=on_fail["severity"],
            details={"criteria": config["criteria"], "playbook": context.playbook.key},
            source=f"playbook:{context.playbook.key}",
            dedupe_key=f"steprun:{context.step_run.pk}:alert",
        )
        outcome["alert"] = alert.pk
    elif on_fail["action"] == "send_email":
        outcome["emails"] = [
            context.email_once(
                contact=contact, subject=on_fail["subject"], text=on_fail["text"], html=on_fail.get("html", "")
            )
            for contact in context.addressed()
        ]
    elif on_fail["action"] == "goto":
        outcome["goto"] = on_fail["step"]
    return outcome


def nps_survey(context):
    """An email with eleven one-click links, each a signed token naming the contact and the score."""
    config = context.config
    emails = []
    for contact in context.addressed():
        links = [
            (
                score,
                nps_url(
                    nps_token(
                        tenant=context.tenant,
                        contact=contact,
                        score=score,
                        step_run=context.step_run,
                        expires_days=config["expires_days"],
                    )
                ),
            )
            for score in range(11)
        ]
        emails.append(
            context.email_once(
                contact=contact,
                purpose="nps",
                subject=config["subject"],
                text=config["text"],
                text_suffix="\n\n" + "\n".join(f"{score}: {url}" for score, url in links),
                html_suffix="<p>" + " ".join(f'<a href="{escape(url)}">{score}</a>' for score, url in links) + "</p>",
            )
        )
    return {"emails": emails}


def nps_url(token):
    base = getattr(settings, "CSP_PUBLIC_URL", "http://127.0.0.1:8000").rstrip("/")
    try:
        path = reverse("nps-answer", args=[token])
    except NoReverseMatch:
        path = f"/nps/{token}/"
    return base + path


def flag_expansion(context):
    key = f"steprun:{context.step_run.pk}:expansion"
    opportunity, _ = ExpansionOpportunity.objects.for_tenant(context.tenant).get_or_create(
        key=key,
        defaults={
            "tenant": context.tenant,
            "account": context.account,
            "title": context.render(context.config["title"])[:300],
            "note": context.render(context.config.get("note", "")),
            "source": f"playbook:{context.playbook.key}",
        },
    )
    payload = {**context.payload(), "opportunity": {"id": opportunity.pk, "title": opportunity.title}}
    deliveries = context.webhook("account.expansion_flagged", payload, "expansion")
    return {"opportunity": opportunity.pk, "deliveries": list(deliveries or [])}


def create_task(context):
    config = context.config
    task = context.task_once(
        title=config["title"], due_in_days=config["due_in_days"], description=config.get("description", "")
    )
    return {"task": task.pk}


def call_webhook(context):
    payload = {**context.payload(), "data": context.config.get("payload", {})}
    deliveries = context.webhook(context.config["event_type"], payload, "webhook")
    return {"deliveries": list(deliveries or [])}


def update_account(context):
    config = context.config
    if "stage" in config:
        from lifecycle.models import Stage
        from lifecycle.services import account_move_stage

        stage = Stage.objects.for_tenant(context.tenant).filter(key=config["stage"]).first()
        if stage is None:
            raise PermanentStepError(f"Unknown stage {config['stage']!r}.")
        if context.stage is not None and context.stage.pk == stage.pk:
            return {"stage": stage.key, "moved": False}
        with transaction.atomic():
            account_move_stage(
                tenant=context.tenant,
                account=context.account,
                to_stage=stage,
                actor=None,
                reason=config.get("reason") or f"Playbook {context.playbook.name}.",
            )
        context.facts.stage_changed(context.account.pk)
        return {"stage": stage.key, "moved": True}
    account = Account.objects.for_tenant(context.tenant).select_for_update().get(pk=context.account.pk)
    account.attributes = {**(account.attributes or {}), config["attribute"]: config.get("value")}
    account.save(update_fields=["attributes", "updated_at"])
    return {"attribute": config["attribute"], "value": config.get("value")}


EXECUTORS = {
    StepKind.SEND_EMAIL: send_email,
    StepKind.SCHEDULE_DEMO: schedule_demo,
    StepKind.USAGE_CHECK: usage_check,
    StepKind.NPS_SURVEY: nps_survey,
    StepKind.FLAG_EXPANSION: flag_expansion,
    StepKind.CREATE_TASK: create_task,
    StepKind.CALL_WEBHOOK: call_webhook,
    StepKind.UPDATE_ACCOUNT: update_account,
}
