"""Admin settings pages, mounted at /t/<tenant_slug>/settings/.

Every view here is wrapped in tenancy.settings_views.settings_page: members
who are not admins get a 403 page, everyone else a 404. The exceptions:
`join`, reached from an invitation email before its reader can sign in, and
`member_hours` and `member_digest`, where every member sets their own
working hours and reads their own daily digest.
"""

from django.urls import path

from alerts import settings_views as alerts
from csplatform import settings_views as csplatform_views
from csplatform.customers import settings_views as customers
from csplatform.rules import settings_views as rules
from csplatform.tenancy import settings_views as tenancy
from health import settings_views as health
from lifecycle import settings_views as lifecycle
from playbooks import settings_views as playbooks

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
    path("import/", customers.data_import, name="settings-import"),
    path("import/template/<slug:kind>/", customers.import_template, name="settings-import-template"),
    path("metrics/", rules.metrics, name="settings-metrics"),
    path("metrics/new/", rules.metric_edit, name="settings-metric-new"),
    path("metrics/<int:pk>/", rules.metric_edit, name="settings-metric"),
    path("metrics/<int:pk>/delete/", rules.metric_delete, name="settings-metric-delete"),
    path("criteria/preview/", alerts.criteria_preview, name="settings-criteria-preview"),
    path("segments/", alerts.segments, name="settings-segments"),
    path("segments/new/", alerts.segment_edit, name="settings-segment-new"),
    path("segments/<int:pk>/", alerts.segment_edit, name="settings-segment"),
    path("segments/<int:pk>/members/", alerts.segment_members, name="settings-segment-members"),
    path("segments/<int:pk>/delete/", alerts.segment_remove, name="settings-segment-delete"),
    path("alert-rules/", alerts.alert_rules, name="settings-alert-rules"),
    path("alert-rules/new/", alerts.alert_rule_edit, name="settings-alert-rule-new"),
    path("alert-rules/starter/", alerts.alert_rules_starter, name="settings-alert-rules-starter"),
    path("alert-rules/<int:pk>/", alerts.alert_rule_edit, name="settings-alert-rule"),
    path("alert-rules/<int:pk>/toggle/", alerts.alert_rule_toggle, name="settings-alert-rule-toggle"),
    path("alert-rules/<int:pk>/delete/", alerts.alert_rule_remove, name="settings-alert-rule-delete"),
    path("webhooks/", alerts.webhooks, name="settings-webhooks"),
    path("webhooks/<int:pk>/", alerts.webhook_detail, name="settings-webhook"),
    path("webhooks/<int:pk>/rotate/", alerts.webhook_rotate, name="settings-webhook-rotate"),
    path("webhooks/<int:pk>/toggle/", alerts.webhook_toggle, name="settings-webhook-toggle"),
    path("webhooks/<int:pk>/test/", alerts.webhook_test, name="settings-webhook-test"),
    path("webhooks/<int:pk>/retry/", alerts.webhook_retry, name="settings-webhook-retry"),
    path("webhooks/<int:pk>/delete/", alerts.webhook_remove, name="settings-webhook-delete"),
    path("playbooks/", playbooks.playbooks, name="settings-playbooks"),
    path("playbooks/new/", playbooks.playbook_edit, name="settings-playbook-new"),
    path("playbooks/library/<slug:key>/", playbooks.library_install, name="settings-playbook-install"),
    path("playbooks/<int:pk>/", playbooks.playbook_edit, name="settings-playbook"),
    path("playbooks/<int:pk>/toggle/", playbooks.playbook_toggle, name="settings-playbook-toggle"),
    path("playbooks/<int:pk>/simulate/", playbooks.playbook_simulate, name="settings-playbook-simulate"),
    path("members/", tenancy.members, name="settings-members"),
    path("members/<int:pk>/invite/", tenancy.member_reinvite, name="settings-member-reinvite"),
    path("members/<int:pk>/role/", tenancy.member_role, name="settings-member-role"),
    path("members/<int:pk>/remove/", tenancy.member_delete, name="settings-member-remove"),
    path("members/<int:pk>/hours/", tenancy.member_hours, name="settings-member-hours"),
    path("members/<int:pk>/digest/", csplatform_views.member_digest, name="settings-member-digest"),
    path("join/<uidb64>/<token>/", tenancy.JoinView.as_view(), name="settings-join"),
    path("api-keys/", tenancy.api_keys, name="settings-api-keys"),
    path("api-keys/<int:pk>/created/", tenancy.api_key_created, name="settings-api-key-created"),
    path("api-keys/<int:pk>/revoke/", tenancy.api_key_delete, name="settings-api-key-revoke"),
    path("audit/", tenancy.audit_log, name="settings-audit"),
    path("pipeline/", csplatform_views.pipeline_status, name="settings-pipeline"),
]
