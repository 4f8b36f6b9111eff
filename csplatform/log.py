"""What each log line says beyond the message."""

import logging

from django_guid import get_guid


class RequestId(logging.Filter):
    """Name on each record the request or Celery task it came from ("-" outside both, as in beat)."""

    def filter(self, record):
        record.request_id = get_guid() or "-"
        return True
