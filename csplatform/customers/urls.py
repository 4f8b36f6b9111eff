from django.urls import path

from . import views

# Included under /t/<tenant_slug>/ by csplatform.tenancy.urls.
urlpatterns = [
    path("", views.portfolio, name="portfolio"),
    path("accounts/<int:account_id>/", views.account_detail, name="account-detail"),
]
