from django.core.validators import RegexValidator
from django.db import models

from csplatform.customers.models import Account
from csplatform.tenancy.models import TenantModel, TenantQuerySet, User

from .sla import days_in_stage_expression, sla_status_expression

validate_colour = RegexValidator(r"^#[0-9a-fA-F]{6}$", "Use a hex colour such as #3b82f6.", code="invalid_colour")


class Stage(TenantModel):
    """One step of a tenant's lifecycle, in `position` order.

    An account enters the next stage automatically when that stage's entry
    criteria hold; a stage `entered_from_any_earlier` takes accounts from every
    stage before it, as a renewal stage entered by date does. A stage without
    criteria is entered only by a manual move; accounts in a terminal stage
    never move on automatically.
    """

    key = models.SlugField(max_length=50)
    name = models.CharField(max_length=100)
    description = models.TextField(blank=True)
    colour = models.CharField(max_length=7, default="#64748b", validators=[validate_colour])
    position = models.PositiveIntegerField(default=0)
    entry_criteria = models.JSONField(null=True, blank=True)
    entry_criteria_text = models.TextField(blank=True)
    entered_from_any_earlier = models.BooleanField(
        default=False,
        help_text="Accounts in any earlier stage enter it when its criteria hold, not only those in the stage "
        "just before it.",
    )
    is_initial = models.BooleanField(default=False)
    is_terminal = models.BooleanField(default=False)
    outcome = models.CharField(
        max_length=50, blank=True, help_text="What reaching a terminal stage means, e.g. churned."
    )
    expected_days = models.PositiveIntegerField(null=True, blank=True, help_text="How long an account should stay.")
    # After a renewal an account re-enters the lifecycle here rather than at the start.
    cycle_to = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["position", "id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "key"], name="stage_unique_key"),
            models.UniqueConstraint(
                fields=["tenant"], condition=models.Q(is_initial=True), name="stage_one_initial_per_tenant"
            ),
        ]
        indexes = [models.Index(fields=["tenant", "position"])]

    def __str__(self):
        return self.name


class AccountStageQuerySet(TenantQuerySet):
    def with_sla(self, tenant):
        """Annotate `days_in_stage` and `sla_status` (on_track, behind, stuck)."""
        return self.annotate(days_in_stage=days_in_stage_expression(tenant), sla_status=sla_status_expression(tenant))


class AccountStage(TenantModel):
    """Where an account is now.

    `entered_day` is the day number (date.toordinal()) of `entered_at` in the
    tenant's time zone, so "days in stage" is integer arithmetic that every
    database computes the same way.
    """

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="lifecycle")
    # Stages holding accounts are deleted only after moving them elsewhere.
    stage = models.ForeignKey(Stage, on_delete=models.PROTECT, related_name="account_states")
    entered_at = models.DateTimeField()
    entered_day = models.PositiveIntegerField()

    objects = AccountStageQuerySet.as_manager()

    class Meta:
        indexes = [models.Index(fields=["tenant", "stage", "entered_at"])]

    def __str__(self):
        return f"account {self.account_id} in {self.stage_id}"


class TransitionKind(models.TextChoices):
    INITIAL = "initial", "Initial placement"
    AUTOMATIC = "automatic", "Entry criteria met"
    MANUAL = "manual", "Moved by hand"
    CYCLE = "cycle", "Renewed"


class StageTransition(TenantModel):
    """One move of an account between stages, with why it happened.

    The stage keys are kept beside the foreign keys so the history still
    reads right after a stage is deleted.
    """

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="stage_transitions")
    from_stage = models.ForeignKey(Stage, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    to_stage = models.ForeignKey(Stage, null=True, on_delete=models.SET_NULL, related_name="transitions_in")
    from_key = models.CharField(max_length=50, blank=True)
    to_key = models.CharField(max_length=50)
    at = models.DateTimeField()
    by_user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=10, choices=TransitionKind.choices)
    reason = models.TextField(blank=True)
    explanation = models.JSONField(null=True, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [
            models.Index(fields=["tenant", "account", "id"]),
            models.Index(fields=["tenant", "to_stage", "at"]),
            models.Index(fields=["tenant", "at"]),
        ]

    def __str__(self):
        return f"account {self.account_id}: {self.from_key or '-'} -> {self.to_key}"
