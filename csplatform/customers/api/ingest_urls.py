from django.urls import path, re_path

from . import ingest_views

urlpatterns = [
    # With or without the trailing slash: a POST cannot be redirected to add one.
    re_path(r"^events/batch/?$", ingest_views.EventBatchView.as_view(), name="api-events-batch"),
    path("accounts/<int:account_id>/events/", ingest_views.AccountEventListView.as_view(), name="api-account-events"),
]
