from django.contrib import admin

from .models import OutboundEmail, Playbook, Run, Task


@admin.register(Playbook)
class PlaybookAdmin(admin.ModelAdmin):
    list_display = ["name", "key", "tenant", "trigger_type", "enabled"]
    list_filter = ["enabled", "trigger_type"]


@admin.register(Run)
class RunAdmin(admin.ModelAdmin):
    list_display = ["id", "playbook", "account", "status", "started_at", "ended_at"]
    list_filter = ["status"]


@admin.register(Task)
class TaskAdmin(admin.ModelAdmin):
    list_display = ["title", "owner", "due_at", "completed_at"]


@admin.register(OutboundEmail)
class OutboundEmailAdmin(admin.ModelAdmin):
    list_display = ["subject", "to_email", "status", "created_at", "sent_at"]
    list_filter = ["status"]
