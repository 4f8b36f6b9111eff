from django.contrib import admin

from .models import HealthScore, HealthSettings, HealthSnapshot, Scorecard, ScorecardVersion


class ScorecardVersionInline(admin.TabularInline):
    model = ScorecardVersion
    fields = ["number", "note", "created_by", "created_at", "published_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(Scorecard)
class ScorecardAdmin(admin.ModelAdmin):
    list_display = ["name", "tenant", "stage", "published_version", "updated_at"]
    list_filter = ["tenant"]
    raw_id_fields = ["stage", "published_version"]
    inlines = [ScorecardVersionInline]


@admin.register(HealthSettings)
class HealthSettingsAdmin(admin.ModelAdmin):
    list_display = ["tenant", "red_below", "green_from"]


@admin.register(HealthScore)
class HealthScoreAdmin(admin.ModelAdmin):
    list_display = ["account", "tenant", "score", "colour", "computed_score", "override_colour", "computed_at"]
    list_filter = ["tenant", "colour"]
    raw_id_fields = ["account", "scorecard_version", "override_by"]


@admin.register(HealthSnapshot)
class HealthSnapshotAdmin(admin.ModelAdmin):
    list_display = ["account", "tenant", "day", "score", "colour"]
    # By account name, as the list reads; the model's own order avoids that join everywhere else.
    ordering = ["account", "-day"]
    list_filter = ["tenant", "colour"]
    date_hierarchy = "day"
    raw_id_fields = ["account", "scorecard_version"]
