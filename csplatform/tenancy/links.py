from django.conf import settings
from django.urls import reverse


def page_url(name, tenant, *args, query=""):
    """The full address of one of the tenant's pages, for emails: the platform's public URL and the page's path."""
    return f"{settings.CSP_PUBLIC_URL.rstrip('/')}{reverse(name, args=[tenant.slug, *args])}{query}"
