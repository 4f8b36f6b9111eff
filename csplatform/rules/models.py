from django.core.validators import MaxValueValidator, MinValueValidator, RegexValidator
from django.db import models

from csplatform.customers.models import Account, Contact
from csplatform.fields import ComputedJSONField
from csplatform.tenancy.models import TenantModel

# A key is written in criteria as `metric.<key>`, so it must be a plain identifier.
METRIC_KEY_PATTERN = r"^[a-z][a-z0-9_]{0,62}$"
validate_metric_key = RegexValidator(
    METRIC_KEY_PATTERN,
    "Use a lowercase letter followed by lowercase letters, digits or underscores (at most 63 characters).",
    code="invalid_key",
)
MAX_WINDOW_DAYS = 365


class MetricSubject(models.TextChoices):
    ACCOUNT = "account", "Account"
    CONTACT = "contact", "Contact"


class Aggregation(models.TextChoices):
    COUNT = "count", "Number of events"
    ACTIVE_DAYS = "active_days", "Days with any of the events"
    DISTINCT_CONTACTS = "distinct_contacts", "Distinct contacts with any of the events"
    SUM = "sum", "Sum of a numeric property"
    AVERAGE = "average", "Average of a numeric property"
    LATEST = "latest", "Latest value of a numeric property"
    DISTINCT_VALUES = "distinct_values", "Distinct values of a text property"
    TREND = "trend", "Change in the number of events against the window before, in percent"


# Aggregations over numeric properties (DailyPropertyRollup).
NUMERIC_PROPERTY_AGGREGATIONS = {Aggregation.SUM, Aggregation.AVERAGE, Aggregation.LATEST}
# Aggregations that read a property and therefore need its name.
PROPERTY_AGGREGATIONS = NUMERIC_PROPERTY_AGGREGATIONS | {Aggregation.DISTINCT_VALUES}


class MetricDefinition(TenantModel):
    """A tenant's own metric over the daily rollups, e.g. logins in the last 30 days.

    The value is computed for every account (or contact) by
    `csplatform.rules.metrics.metrics_compute` and read in criteria as
    `metric.<key>` (accounts) or `contact.metric.<key>` (contacts).
    """

    key = models.CharField(max_length=63, validators=[validate_metric_key])
    label = models.CharField(max_length=200)
    subject = models.CharField(max_length=10, choices=MetricSubject.choices, default=MetricSubject.ACCOUNT)
    event_names = models.JSONField(default=list)
    window_days = models.PositiveSmallIntegerField(
        default=30, validators=[MinValueValidator(1), MaxValueValidator(MAX_WINDOW_DAYS)]
    )
    aggregation = models.CharField(max_length=20, choices=Aggregation.choices, default=Aggregation.COUNT)
    property = models.CharField(max_length=100, blank=True)
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["key"]
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="metric_definition_unique_key")]

    def __str__(self):
        return self.key


class AccountMetrics(TenantModel):
    """The latest computed metric values of one account: `{key: number or null}`."""

    account = models.OneToOneField(Account, on_delete=models.CASCADE, related_name="metric_values")
    values = ComputedJSONField(default=dict)
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "account"], name="account_metrics_unique_account")]

    def __str__(self):
        return f"metrics of account {self.account_id}"


class ContactMetrics(TenantModel):
    """The latest computed metric values of one contact: `{key: number or null}`."""

    contact = models.OneToOneField(Contact, on_delete=models.CASCADE, related_name="metric_values")
    values = ComputedJSONField(default=dict)
    computed_at = models.DateTimeField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "contact"], name="contact_metrics_unique_contact")]

    def __str__(self):
        return f"metrics of contact {self.contact_id}"
