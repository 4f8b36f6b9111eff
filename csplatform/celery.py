import os

from celery import Celery
from celery.signals import setup_logging

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings")

# csplatform itself is not an installed app, so autodiscovery would miss its tasks.
app = Celery("csplatform", include=["csplatform.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def log_as_the_web_processes_do(**kwargs):
    """Workers and beat take the project's LOGGING (format, level, request ids) instead of Celery's own."""
    from logging.config import dictConfig

    from django.conf import settings

    dictConfig(settings.LOGGING)
