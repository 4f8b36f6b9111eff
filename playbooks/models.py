from django.db import models
from django.db.models import Q

from csplatform.customers.models import Account, Contact
from csplatform.tenancy.models import TenantModel, User, tenant_key


class TriggerType(models.TextChoices):
    STAGE_ENTERED = "stage_entered", "Account entered a stage"
    STAGE_LEFT = "stage_left", "Account left a stage"
    HEALTH_BELOW = "health_below", "Health fell below a value"
    HEALTH_ABOVE = "health_above", "Health rose above a value"
    HEALTH_COLOUR_CHANGED = "health_colour_changed", "Health colour changed to"
    SEGMENT_ENTERED = "segment_entered", "Account entered a segment"
    EVENT_RECEIVED = "event_received", "Usage event received"
    DATE_RELATIVE = "date_relative", "Days before an account date"
    MANUAL = "manual", "Started by hand"


class EnrollmentPolicy(models.TextChoices):
    ONCE = "once", "Once per account"
    AGAIN_AFTER_DAYS = "again_after_days", "Again after some days"


class StepKind(models.TextChoices):
    SEND_EMAIL = "send_email", "Send an email"
    SCHEDULE_DEMO = "schedule_demo", "Schedule a demo"
    USAGE_CHECK = "usage_check", "Check usage"
    NPS_SURVEY = "nps_survey", "NPS survey"
    FLAG_EXPANSION = "flag_expansion", "Flag an expansion opportunity"
    CREATE_TASK = "create_task", "Create a task"
    CALL_WEBHOOK = "call_webhook", "Call a webhook"
    UPDATE_ACCOUNT = "update_account", "Update the account"


class Playbook(TenantModel):
    """A triggered sequence of steps run once per enrolled account.

    `audience` (criteria JSON over contacts) picks who receives customer-facing
    steps; without one it is the account's primary contact. `exit_criteria`
    (over the account) ends a run before any step when it holds.
    """

    key = models.SlugField(max_length=50)
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    enabled = models.BooleanField(default=False)
    enabled_at = models.DateTimeField(null=True, blank=True)
    trigger_type = models.CharField(max_length=30, choices=TriggerType.choices)
    trigger_config = models.JSONField(default=dict, blank=True)
    audience = models.JSONField(null=True, blank=True)
    audience_text = models.TextField(blank=True)
    exit_criteria = models.JSONField(null=True, blank=True)
    exit_criteria_text = models.TextField(blank=True)
    enrollment_policy = models.CharField(max_length=20, choices=EnrollmentPolicy.choices, default=EnrollmentPolicy.ONCE)
    again_after_days = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="playbook_unique_key")]
        indexes = [models.Index(fields=["tenant", "enabled", "trigger_type"])]

    def __str__(self):
        return self.name


class Step(TenantModel):
    # Its one key starting with the tenant covers active steps only.
    tenant = tenant_key(db_index=True)
    playbook = models.ForeignKey(Playbook, on_delete=models.CASCADE, related_name="steps")
    position = models.PositiveIntegerField()
    kind = models.CharField(max_length=30, choices=StepKind.choices)
    # Minutes after the previous step finished (after enrolment for the first step).
    delay_minutes = models.PositiveIntegerField(default=0)
    config = models.JSONField(default=dict, blank=True)
    # Editing a playbook retires its old steps, which past runs still point at.
    active = models.BooleanField(default=True)

    class Meta:
        ordering = ["playbook", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "playbook", "position"], condition=Q(active=True), name="step_unique_position"
            )
        ]

    def __str__(self):
        return f"{self.playbook_id}#{self.position} {self.kind}"


class RunStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    EXITED = "exited", "Exited"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


class Run(TenantModel):
    playbook = models.ForeignKey(Playbook, on_delete=models.CASCADE, related_name="runs")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="playbook_runs")
    status = models.CharField(max_length=10, choices=RunStatus.choices, default=RunStatus.ACTIVE)
    # The stage the trigger saw the account enter; leaving it ends the run.
    trigger_stage_key = models.CharField(max_length=50, blank=True)
    started_at = models.DateTimeField()
    ended_at = models.DateTimeField(null=True, blank=True)
    reason = models.TextField(blank=True)
    started_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "playbook", "account"],
                condition=Q(status="active"),
                name="run_one_active_per_account",
            )
        ]
        indexes = [models.Index(fields=["tenant", "account", "-started_at"])]

    def __str__(self):
        return f"run {self.pk} of playbook {self.playbook_id} for account {self.account_id}"


class StepRunStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    WAITING_REVIEW = "waiting_review", "Waiting for review"


class StepRun(TenantModel):
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="step_runs")
    step = models.ForeignKey(Step, on_delete=models.CASCADE, related_name="+")
    # The n-th step this run executes; a usage check may go back to an earlier step.
    sequence = models.PositiveIntegerField(default=0)
    due_at = models.DateTimeField()
    status = models.CharField(max_length=20, choices=StepRunStatus.choices, default=StepRunStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    outcome = models.JSONField(default=dict, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["run", "sequence"]
        constraints = [models.UniqueConstraint(fields=["tenant", "run", "sequence"], name="steprun_unique_sequence")]
        indexes = [
            # The runner's claim query spans tenants: due pending rows first.
            models.Index(fields=["status", "due_at"], name="steprun_due"),
            models.Index(fields=["tenant", "run"]),
        ]


class Task(TenantModel):
    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.CASCADE, related_name="tasks")
    owner = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    title = models.CharField(max_length=300)
    description = models.TextField(blank=True)
    due_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    completed_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    source = models.CharField(max_length=100, blank=True)
    # Makes the step that creates the task idempotent: one task per key.
    key = models.CharField(max_length=200, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["due_at", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="task_unique_key")]
        indexes = [models.Index(fields=["tenant", "owner", "completed_at", "due_at"])]

    def __str__(self):
        return self.title


class EmailStatus(models.TextChoices):
    PENDING_REVIEW = "pending_review", "Waiting for review"
    QUEUED = "queued", "Queued"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"
    # Stored, never sent: the step's record that it left an unsubscribed contact out.
    UNSUBSCRIBED = "unsubscribed", "Not sent: unsubscribed"


class OutboundEmail(TenantModel):
    """An email the platform sends, stored before it is sent; sending reads this row."""

    account = models.ForeignKey(Account, null=True, blank=True, on_delete=models.CASCADE, related_name="emails")
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    step_run = models.ForeignKey(StepRun, null=True, blank=True, on_delete=models.SET_NULL, related_name="emails")
    owner = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    to_email = models.EmailField()
    from_email = models.CharField(max_length=300, blank=True)
    reply_to = models.CharField(max_length=300, blank=True)
    subject = models.CharField(max_length=500)
    html = models.TextField(blank=True)
    text = models.TextField()
    attachments = models.JSONField(default=list, blank=True)
    status = models.CharField(max_length=20, choices=EmailStatus.choices, default=EmailStatus.QUEUED)
    idempotency_key = models.CharField(max_length=200)
    not_before = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "idempotency_key"], name="email_unique_idempotency_key")
        ]
        indexes = [models.Index(fields=["tenant", "status", "created_at"]), models.Index(fields=["tenant", "account"])]

    def __str__(self):
        return f"{self.subject} -> {self.to_email}"


class ExpansionOpportunity(TenantModel):
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="expansion_opportunities")
    title = models.CharField(max_length=300)
    note = models.TextField(blank=True)
    source = models.CharField(max_length=100, blank=True)
    key = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="expansion_unique_key")]
