import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "csplatform.settings")

# csplatform itself is not an installed app, so autodiscovery would miss its tasks.
app = Celery("csplatform", include=["csplatform.tasks"])
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
