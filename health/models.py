from django.db import models
from django.utils import timezone

from csplatform.customers.models import Account
from csplatform.fields import ComputedJSONField
from csplatform.tenancy.models import TenantModel, User
from lifecycle.models import Stage

from .scoring import ColourBands


class Colour(models.TextChoices):
    GREEN = "green", "Green"
    YELLOW = "yellow", "Yellow"
    RED = "red", "Red"


class HealthSettings(TenantModel):
    """Where a tenant draws the colour lines: below `red_below` is red, from `green_from` up green."""

    red_below = models.PositiveSmallIntegerField(default=40)
    green_from = models.PositiveSmallIntegerField(default=70)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant"], name="health_settings_one_per_tenant")]

    def __str__(self):
        return f"health settings of tenant {self.tenant_id}"

    @property
    def bands(self):
        return ColourBands(red_below=self.red_below, green_from=self.green_from)


class Scorecard(TenantModel):
    """How accounts in one stage are scored; the scorecard without a stage is the tenant default.

    The measures live in versions: every saved change is a new version, and
    accounts are scored with the published one.
    """

    stage = models.ForeignKey(Stage, null=True, blank=True, on_delete=models.CASCADE, related_name="scorecards")
    name = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    published_version = models.ForeignKey(
        "ScorecardVersion", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "stage"], name="scorecard_one_per_stage"),
            models.UniqueConstraint(
                fields=["tenant"], condition=models.Q(stage__isnull=True), name="scorecard_one_default_per_tenant"
            ),
        ]

    def __str__(self):
        return self.name


class ScorecardVersion(TenantModel):
    """One saved state of a scorecard's measures (see health.scoring for their shape). Never edited."""

    scorecard = models.ForeignKey(Scorecard, on_delete=models.CASCADE, related_name="versions")
    number = models.PositiveIntegerField()
    measures = models.JSONField(default=list)
    note = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["scorecard", "-number"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "scorecard", "number"], name="scorecard_version_unique_number")
        ]

    def __str__(self):
        return f"{self.scorecard} v{self.number}"


class HealthScore(TenantModel):
    """An account's current health.

    `score` and `colour` are what everyone sees: the override's while one is
    in force, else the computed ones, which stay visible beside it.
    """

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="health")
    score = models.FloatField(null=True, blank=True)
    colour = models.CharField(max_length=10, choices=Colour.choices, blank=True)
    breakdown = ComputedJSONField(default=list)
    scorecard_version = models.ForeignKey(
        ScorecardVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    computed_score = models.FloatField(null=True, blank=True)
    computed_colour = models.CharField(max_length=10, choices=Colour.choices, blank=True)
    override_score = models.FloatField(null=True, blank=True)
    override_colour = models.CharField(max_length=10, choices=Colour.choices, blank=True)
    override_reason = models.TextField(blank=True)
    override_by = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    override_at = models.DateTimeField(null=True, blank=True)
    override_expires_at = models.DateTimeField(null=True, blank=True)
    delta_7d = models.FloatField(null=True, blank=True)
    delta_30d = models.FloatField(null=True, blank=True)
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "account"], name="health_score_unique_account")]
        indexes = [models.Index(fields=["tenant", "colour"]), models.Index(fields=["tenant", "score"])]

    def __str__(self):
        return f"health of account {self.account_id}: {self.score} {self.colour}"

    @property
    def has_override(self):
        return bool(self.override_at)

    def override_active(self, now=None):
        return override_in_force(self.override_at, self.override_expires_at, now or timezone.now())


def override_in_force(override_at, override_expires_at, now):
    """Whether an override set at `override_at` (None: no override) is still in force at `now`."""
    return bool(override_at) and (override_expires_at is None or override_expires_at > now)


class HealthSnapshot(TenantModel):
    """An account's computed health on one day, with the raw measure values it was scored from."""

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="health_snapshots")
    day = models.DateField()
    score = models.FloatField(null=True, blank=True)
    colour = models.CharField(max_length=10, choices=Colour.choices, blank=True)
    breakdown = ComputedJSONField(default=list)
    scorecard_version = models.ForeignKey(
        ScorecardVersion, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        # By the account's id, not "account": that would follow the account's own order and join the
        # accounts into every snapshot query left unordered, the pipeline's among them.
        ordering = ["account_id", "-day"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "account", "day"], name="health_snapshot_unique_day")
        ]
        indexes = [models.Index(fields=["tenant", "day"])]

    def __str__(self):
        return f"health of account {self.account_id} on {self.day}"
