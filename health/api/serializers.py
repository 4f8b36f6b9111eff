from rest_framework import serializers

from csplatform.tenancy.api.fields import TenantRelatedField
from lifecycle.models import Stage

from ..measures import clean_measures, errors_as_detail
from ..models import Colour, HealthScore, HealthSnapshot, Scorecard, ScorecardVersion
from ..services import known_sources


class MeasuresField(serializers.JSONField):
    """A list of measures, validated against the tenant's metrics; errors point at `measures[i].<field>`."""

    def to_internal_value(self, data):
        data = super().to_internal_value(data)
        clean, errors = clean_measures(data, known_sources(self.context["tenant"]))
        if errors:
            raise serializers.ValidationError(errors_as_detail(errors)["measures"])
        return clean


class ScorecardVersionSerializer(serializers.ModelSerializer):
    measures = MeasuresField()
    created_by = serializers.SlugRelatedField(slug_field="email", read_only=True)
    is_published = serializers.SerializerMethodField()

    class Meta:
        model = ScorecardVersion
        fields = ["number", "measures", "note", "created_by", "created_at", "published_at", "is_published"]
        read_only_fields = ["number", "created_at", "published_at"]

    def get_is_published(self, version):
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


class HealthScoreSerializer(BreakdownMixin, serializers.ModelSerializer):
    override = serializers.SerializerMethodField()
    scorecard = serializers.SerializerMethodField()

    class Meta:
        model = HealthScore
        fields = [
            "account", "score", "colour", "computed_score", "computed_colour", "delta_7d", "delta_30d",
            "breakdown", "scorecard", "override", "computed_at",
        ]

    def get_scorecard(self, health):
        return self.scorecard_of(health)

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
