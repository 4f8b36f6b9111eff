from django.contrib import admin

from .models import AccountStage, Stage, StageTransition


@admin.register(Stage)
class StageAdmin(admin.ModelAdmin):
    list_display = ("name", "key", "tenant", "position", "is_initial", "is_terminal", "expected_days")
    list_filter = ("tenant", "is_terminal")
    search_fields = ("key", "name")
    ordering = ("tenant", "position")


@admin.register(AccountStage)
class AccountStageAdmin(admin.ModelAdmin):
    list_display = ("account", "stage", "entered_at", "tenant")
    list_filter = ("tenant",)
    raw_id_fields = ("account",)


@admin.register(StageTransition)
class StageTransitionAdmin(admin.ModelAdmin):
    list_display = ("account", "from_key", "to_key", "kind", "at", "by_user", "tenant")
    list_filter = ("tenant", "kind")
    raw_id_fields = ("account",)
    readonly_fields = ("explanation",)
