from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from csplatform.tenancy.api.fields import TenantRelatedField
from lifecycle.models import Stage

from ..measures import clean_measures, errors_as_detail
from ..models import Colour, HealthScore, HealthSnapshot, Scorecard, ScorecardVersion
from ..services import known_sources


COLOUR_VALUES = [value for value, _ in Colour.choices]


# Colours under other names than `colour` are documented as plain strings: an
# enum there would make drf-spectacular name the same choice set twice
# (ColourEnum and ComputedColourEnum, ...) and warn.
@extend_schema_field({"type": "string", "description": f"{', '.join(COLOUR_VALUES)}; empty when not scored."})
class ScoredColourField(serializers.CharField):
    """A read-only colour that is blank when there is none."""


@extend_schema_field({"type": "string", "description": f"{', '.join(COLOUR_VALUES)}; null when not scored."})
class NullableColourField(serializers.CharField):
    """A read-only colour that is null when there is none."""


class MeasuresField(serializers.JSONField):
    """A list of measures, validated against the tenant's metrics; errors point at `measures[i].<field>`."""

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        clean, errors = clean_measures(data, known_sources(self.context["tenant"]))
        if errors:
            raise serializers.ValidationError(errors_as_detail(errors)["measures"])
        return clean


class PublishedVersionSerializer(serializers.Serializer):
    """The published version as embedded in a scorecard (read only)."""

    number = serializers.IntegerField()
    measures = serializers.JSONField()
    published_at = serializers.DateTimeField(allow_null=True)


class ScorecardVersionSerializer(serializers.ModelSerializer):
    measures = MeasuresField()
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True)
    is_published = serializers.SerializerMethodField()

    class Meta:
        model = ScorecardVersion
        fields = ["number", "measures", "note", "created_by", "created_at", "published_at", "is_published"]
        read_only_fields = ["number", "created_at", "published_at"]

    def get_is_published(self, version) -> bool:
        return version.scorecard.published_version_id == version.pk


class ScorecardSerializer(serializers.ModelSerializer):
    """A scorecard; `measures` on create become version 1 (published unless `publish` is false)."""

    stage = TenantRelatedField(queryset=Stage.objects, slug_field="key", allow_null=True, required=False)
    measures = MeasuresField(write_only=True)
    publish = serializers.BooleanField(write_only=True, default=True)
    published_version = serializers.SerializerMethodField()

    class Meta:
        model = Scorecard
        fields = ["id", "name", "description", "stage", "measures", "publish", "published_version", "created_at", "updated_at"]
        read_only_fields = ["created_at", "updated_at"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.instance is not None:
            # Measures change through a new version, never in place.
            self.fields.pop("measures")
            self.fields.pop("publish")

    @extend_schema_field(PublishedVersionSerializer(allow_null=True))
    def get_published_version(self, scorecard):
        version = scorecard.published_version
        if version is None:
            return None
        return {"number": version.number, "measures": version.measures, "published_at": version.published_at}

    def validate(self, data):
        # Checked here rather than in validate_stage, which is not called when stage is left out (the default).
        if self.instance is not None and "stage" not in data:
            return data
        stage = data.get("stage")
        taken = Scorecard.objects.for_tenant(self.context["tenant"]).filter(stage=stage)
        if self.instance is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            which = f"Stage {stage.key!r}" if stage else "The tenant default"
            raise serializers.ValidationError({"stage": f"{which} already has a scorecard."})
        return data


class PreviewSerializer(serializers.Serializer):
    measures = MeasuresField()


class BacktestSerializer(serializers.Serializer):
    measures = MeasuresField(required=False)
    days = serializers.IntegerField(min_value=1, max_value=365, default=90)


class BreakdownMixin:
    @staticmethod
    def scorecard_of(obj):
        version = obj.scorecard_version
        if version is None:
            return None
        return {"id": version.scorecard_id, "name": version.scorecard.name, "version": version.number}


class ScorecardRefSerializer(serializers.Serializer):
    """The scorecard version that computed a score (read only)."""

    id = serializers.IntegerField()
    name = serializers.CharField()
    version = serializers.IntegerField()


class HealthOverrideInfoSerializer(serializers.Serializer):
    """A manual override as shown on an account's health (read only)."""

    score = serializers.FloatField(allow_null=True)
    colour = serializers.ChoiceField(choices=Colour.choices, allow_null=True)
    reason = serializers.CharField()
    by = serializers.EmailField(allow_null=True)
    at = serializers.DateTimeField(allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    active = serializers.BooleanField()


class HealthScoreSerializer(BreakdownMixin, serializers.ModelSerializer):
    override = serializers.SerializerMethodField()
    scorecard = serializers.SerializerMethodField()
    computed_colour = ScoredColourField(read_only=True)

    class Meta:
        model = HealthScore
        fields = [
            "account", "score", "colour", "computed_score", "computed_colour", "delta_7d", "delta_30d",
            "breakdown", "scorecard", "override", "computed_at",
        ]

    @extend_schema_field(ScorecardRefSerializer(allow_null=True))
    def get_scorecard(self, health):
        return self.scorecard_of(health)

    @extend_schema_field(HealthOverrideInfoSerializer(allow_null=True))
    def get_override(self, health):
        if not health.has_override:
            return None
        return {
            "score": health.override_score,
            "colour": health.override_colour or None,
            "reason": health.override_reason,
            "by": health.override_by.email if health.override_by else None,
            "at": health.override_at,
            "expires_at": health.override_expires_at,
            "active": health.override_active(),
        }


class HealthSnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = HealthSnapshot
        fields = ["day", "score", "colour", "breakdown"]


class OverrideSerializer(serializers.Serializer):
    score = serializers.FloatField(min_value=0, max_value=100, required=False, allow_null=True)
    colour = serializers.ChoiceField(choices=Colour.choices, required=False, allow_blank=True)
    reason = serializers.CharField(max_length=2000)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)

    def validate(self, data):
        if data.get("score") is None and not data.get("colour"):
            raise serializers.ValidationError({"score": "Give a score or a colour to override with."})
        return data


class WhyQuerySerializer(serializers.Serializer):
    """`?from=&to=` (dates); declared in get_fields because `from` is a Python keyword."""

    def get_fields(self):
        return {"from": serializers.DateField(required=False), "to": serializers.DateField(required=False)}


class HistoryQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(min_value=1, max_value=730, default=90)


class HealthSettingsSerializer(serializers.Serializer):
    red_below = serializers.IntegerField(min_value=1, max_value=100)
    green_from = serializers.IntegerField(min_value=1, max_value=100)

    def validate(self, data):
        if data["red_below"] > data["green_from"]:
            raise serializers.ValidationError({"green_from": "green_from must be at least red_below."})
        return data


# Response shapes of the analysis endpoints (documentation only: the views return
# the dicts built in health.analysis, these serializers only describe them).


class SnapshotPointSerializer(serializers.Serializer):
    day = serializers.DateField()
    score = serializers.FloatField(allow_null=True)
    colour = serializers.ChoiceField(choices=Colour.choices, allow_null=True)


class MeasureChangeSerializer(serializers.Serializer):
    source = serializers.CharField()
    label = serializers.CharField()
    old_value = serializers.FloatField(allow_null=True)
    new_value = serializers.FloatField(allow_null=True)
    old_points = serializers.FloatField(allow_null=True)
    new_points = serializers.FloatField(allow_null=True)
    points_change = serializers.FloatField()
    text = serializers.CharField()


class HealthWhySerializer(serializers.Serializer):
    """Why an account's score changed; `from` is declared in get_fields because it is a Python keyword."""

    def get_fields(self):
        return {
            "from": SnapshotPointSerializer(allow_null=True),
            "to": SnapshotPointSerializer(allow_null=True),
            "score_change": serializers.FloatField(allow_null=True),
            "summary": serializers.CharField(),
            "changes": MeasureChangeSerializer(many=True),
        }


class ColourCountsSerializer(serializers.Serializer):
    green = serializers.IntegerField()
    yellow = serializers.IntegerField()
    red = serializers.IntegerField()
    unscored = serializers.IntegerField()


class StageColourCountsSerializer(ColourCountsSerializer):
    stage = serializers.CharField(allow_null=True, help_text="The stage key; null for accounts without a stage.")
    name = serializers.CharField()


class OwnerColourCountsSerializer(ColourCountsSerializer):
    owner = serializers.EmailField(allow_null=True, help_text="The owner's email; null for accounts without one.")
    name = serializers.CharField()
    customers = serializers.IntegerField(help_text="Current customers: the accounts not in a terminal stage.")
    mrr = serializers.DecimalField(max_digits=20, decimal_places=2, help_text="Their MRR, summed.")
    renewing_90d = serializers.IntegerField(help_text="How many of them renew in the next 90 days.")


class HealthDistributionSerializer(serializers.Serializer):
    colours = ColourCountsSerializer(
        help_text="The current customers per colour: the accounts in a terminal stage, such as Churned, are counted "
        "in their stage's row only."
    )
    stages = StageColourCountsSerializer(many=True)
    owners = OwnerColourCountsSerializer(many=True, help_text="Each owner's current customers, by name.")


class PreviewSummarySerializer(serializers.Serializer):
    colours = ColourCountsSerializer()
    histogram = serializers.ListField(
        child=serializers.IntegerField(), help_text="Accounts per ten-point bucket: 0-9, 10-19, ..., 90-100."
    )
    average = serializers.FloatField(allow_null=True)


class PreviewColourChangeSerializer(serializers.Serializer):
    account_id = serializers.IntegerField()
    name = serializers.CharField()
    before_score = serializers.FloatField(allow_null=True)
    before_colour = NullableColourField(allow_null=True)
    after_score = serializers.FloatField(allow_null=True)
    after_colour = NullableColourField(allow_null=True)


class PreviewResultSerializer(serializers.Serializer):
    accounts = serializers.IntegerField()
    before = PreviewSummarySerializer()
    after = PreviewSummarySerializer()
    colour_changes_total = serializers.IntegerField()
    colour_changes = PreviewColourChangeSerializer(many=True, help_text="The first 100 accounts whose colour changes.")


class BacktestLevelSerializer(serializers.Serializer):
    churned = serializers.IntegerField()
    caught = serializers.IntegerField()
    recall = serializers.FloatField(allow_null=True)
    median_lead_days = serializers.FloatField(allow_null=True)
    non_churned = serializers.IntegerField()
    non_churned_flagged = serializers.IntegerField()
    precision = serializers.FloatField(allow_null=True)


class BacktestLevelsSerializer(serializers.Serializer):
    red = BacktestLevelSerializer()
    red_or_yellow = BacktestLevelSerializer()


class BacktestAccountSerializer(serializers.Serializer):
    account_id = serializers.IntegerField()
    name = serializers.CharField()
    churned_at = serializers.DateField()
    snapshots = serializers.IntegerField()
    red_days_before_churn = serializers.IntegerField(allow_null=True)
    flagged_days_before_churn = serializers.IntegerField(allow_null=True)


class BacktestColoursSerializer(serializers.Serializer):
    green = serializers.IntegerField()
    yellow = serializers.IntegerField()
    red = serializers.IntegerField()


class BacktestResultSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    snapshots_replayed = serializers.IntegerField()
    levels = BacktestLevelsSerializer()
    churned_accounts = BacktestAccountSerializer(many=True, help_text="The first 100 churned accounts, by churn day.")
    sources_without_history = serializers.ListField(child=serializers.CharField())
    colours_at_end = BacktestColoursSerializer()
