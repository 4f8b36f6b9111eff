"""The CSM dashboard, under /t/<tenant_slug>/; every view is wrapped in tenancy.decorators.tenant_page."""

from django.urls import path

from health import views as health_views
from lifecycle import views as lifecycle_views

urlpatterns = [
    path("", health_views.portfolio, name="portfolio"),
    path("accounts/<int:account_id>/", health_views.account_detail, name="account-detail"),
    path("accounts/<int:account_id>/move/", lifecycle_views.account_move, name="account-move"),
    path("accounts/<int:account_id>/health/", health_views.account_health_override, name="account-health-override"),
    path("board/", lifecycle_views.board, name="board"),
    path("board/move/", lifecycle_views.board_move, name="board-move"),
    path("reports/", health_views.reports, name="reports"),
]
