"""The CSM dashboard, under /t/<tenant_slug>/; every view is wrapped in tenancy.decorators.tenant_page."""

from django.urls import path

from alerts import views as alert_views
from csplatform import dashboard
from csplatform.customers import views as customer_views
from health import views as health_views
from lifecycle import views as lifecycle_views
from playbooks import pages as playbook_pages

urlpatterns = [
    path("", dashboard.portfolio, name="portfolio"),
    path("accounts.csv", dashboard.portfolio_export, name="portfolio-export"),
    path("views/", customer_views.saved_view_add, name="saved-view-add"),
    path("views/<int:view_id>/delete/", customer_views.saved_view_remove, name="saved-view-delete"),
    path("accounts/<int:account_id>/", dashboard.account_detail, name="account-detail"),
    path("accounts/<int:account_id>/activity/", dashboard.account_activity_page, name="account-activity"),
    path("accounts/<int:account_id>/details/", customer_views.account_details, name="account-details"),
    path("accounts/<int:account_id>/move/", lifecycle_views.account_move, name="account-move"),
    path("accounts/<int:account_id>/health/", dashboard.account_health_override, name="account-health-override"),
    path("board/", lifecycle_views.board, name="board"),
    path("board/move/", lifecycle_views.board_move, name="board-move"),
    path("reports/", health_views.reports, name="reports"),
    path("alerts/", alert_views.alert_inbox, name="alerts"),
    path("alerts/bulk/", alert_views.alerts_bulk_page, name="alerts-bulk"),
    path("alerts/<int:alert_id>/acknowledge/", alert_views.alert_acknowledge_page, name="alert-acknowledge"),
    path("alerts/<int:alert_id>/resolve/", alert_views.alert_resolve_page, name="alert-resolve"),
    path("alerts/<int:alert_id>/task/", playbook_pages.alert_task_add, name="alert-task-add"),
    path("notifications/", alert_views.notification_list, name="notifications"),
    path("notifications/read/", alert_views.notifications_read_all, name="notifications-read"),
    path("notifications/<int:notification_id>/", alert_views.notification_open, name="notification-open"),
    path("tasks/", playbook_pages.my_tasks, name="tasks"),
    path("tasks/complete/", playbook_pages.tasks_bulk_complete, name="tasks-complete"),
    path("tasks/<int:task_id>/complete/", playbook_pages.task_complete_page, name="task-complete"),
    path("tasks/<int:task_id>/change/", playbook_pages.task_change_page, name="task-change"),
    path("outbox/", playbook_pages.outbox, name="outbox"),
    path("outbox/bulk/", playbook_pages.outbox_bulk, name="outbox-bulk"),
    path("outbox/<int:email_id>/", playbook_pages.outbox_email, name="outbox-email"),
    path("outbox/<int:email_id>/decide/", playbook_pages.outbox_decide, name="outbox-decide"),
    path(
        "accounts/<int:account_id>/playbooks/start/",
        playbook_pages.account_playbook_start,
        name="account-playbook-start",
    ),
    path(
        "accounts/<int:account_id>/playbooks/runs/<int:run_id>/cancel/",
        playbook_pages.account_run_cancel,
        name="account-run-cancel",
    ),
    path("accounts/<int:account_id>/tasks/", playbook_pages.account_task_add, name="account-task-add"),
    path("accounts/assign/", customer_views.accounts_assign, name="accounts-assign"),
    path("accounts/playbooks/start/", playbook_pages.accounts_playbook_start, name="accounts-playbook-start"),
    path("accounts/<int:account_id>/notes/", dashboard.account_notes_page, name="account-notes"),
    path(
        "accounts/<int:account_id>/notes/<int:note_id>/",
        customer_views.account_note_edit,
        name="account-note-edit",
    ),
    path(
        "accounts/<int:account_id>/notes/<int:note_id>/delete/",
        customer_views.account_note_delete,
        name="account-note-delete",
    ),
    path("accounts/<int:account_id>/contacts/add/", dashboard.account_contact_add, name="account-contact-add"),
    path(
        "accounts/<int:account_id>/contacts/<int:contact_id>/",
        customer_views.account_contact_edit,
        name="account-contact-edit",
    ),
    path(
        "accounts/<int:account_id>/contacts/<int:contact_id>/remove/",
        customer_views.account_contact_remove,
        name="account-contact-remove",
    ),
]
