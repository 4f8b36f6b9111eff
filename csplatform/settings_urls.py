"""Admin settings pages, mounted at /t/<tenant_slug>/settings/.

Every view here is wrapped in tenancy.settings_views.settings_page: members
who are not admins get a 403 page, everyone else a 404. The one exception
is `join`, reached from an invitation email before its reader can sign in.
"""

from django.urls import path

from csplatform.rules import settings_views as rules
from csplatform.tenancy import settings_views as tenancy
from health import settings_views as health
from lifecycle import settings_views as lifecycle

urlpatterns = [
    path("", tenancy.index, name="settings"),
    path("stages/", lifecycle.stages, name="settings-stages"),
    path("stages/new/", lifecycle.stage_edit, name="settings-stage-new"),
    path("stages/reorder/", lifecycle.stages_reorder_view, name="settings-stages-reorder"),
    path("stages/<int:pk>/", lifecycle.stage_edit, name="settings-stage"),
    path("stages/<int:pk>/delete/", lifecycle.stage_remove, name="settings-stage-delete"),
    path("stages/templates/<slug:key>/", lifecycle.template_apply, name="settings-stage-template"),
    path("criteria/check/", rules.criteria_check, name="settings-criteria-check"),
    path("scorecards/", health.scorecards, name="settings-scorecards"),
    path("scorecards/new/", health.scorecard_edit, name="settings-scorecard-new"),
    path("scorecards/<int:pk>/", health.scorecard_edit, name="settings-scorecard"),
    path(
        "scorecards/<int:pk>/versions/<int:version_pk>/publish/",
        health.scorecard_version_publish_view,
        name="settings-scorecard-publish",
    ),
    path("metrics/", rules.metrics, name="settings-metrics"),
    path("metrics/new/", rules.metric_edit, name="settings-metric-new"),
    path("metrics/<int:pk>/", rules.metric_edit, name="settings-metric"),
    path("metrics/<int:pk>/delete/", rules.metric_delete, name="settings-metric-delete"),
    path("members/", tenancy.members, name="settings-members"),
    path("members/<int:pk>/role/", tenancy.member_role, name="settings-member-role"),
    path("members/<int:pk>/remove/", tenancy.member_delete, name="settings-member-remove"),
    path("join/<uidb64>/<token>/", tenancy.JoinView.as_view(), name="settings-join"),
    path("api-keys/", tenancy.api_keys, name="settings-api-keys"),
    path("api-keys/<int:pk>/created/", tenancy.api_key_created, name="settings-api-key-created"),
    path("api-keys/<int:pk>/revoke/", tenancy.api_key_delete, name="settings-api-key-revoke"),
    path("audit/", tenancy.audit_log, name="settings-audit"),
]
