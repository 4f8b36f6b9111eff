"""One error format for every 4xx (and 503) the API returns.

    {"error": {"status": 400, "code": "invalid", "message": "...",
               "fields": [{"field": "items[3].timestamp", "code": "invalid", "message": "..."}]}}

`fields` lists each invalid input with its path, so a client can point at
the exact item of a batch.

A database that cannot be reached (restarting, failing over) answers 503
with Retry-After rather than 500: nothing was committed, and the client's
retry is the right move. Ingest is idempotent, so a retried batch is safe.
On a read, a query value the database refuses (DataError: a character its
encoding lacks, a number past its range) is the client's input, so a 400;
the filters validate what they can before that (tenancy/api/filters.py).
"""

import logging

from django.core.exceptions import PermissionDenied
from django.db import DataError, InterfaceError, OperationalError
from django.http import Http404
from rest_framework import exceptions, permissions, status
from rest_framework.response import Response
from rest_framework.views import set_rollback

logger = logging.getLogger(__name__)


def flatten_errors(detail, path=""):
    """Turn DRF's nested error detail into `[{"field", "code", "message"}]`."""
    if isinstance(detail, dict):
        items = []
        for key, value in detail.items():
            if key in ("non_field_errors", "__all__"):
                child = path
            elif isinstance(key, int):
                child = f"{path}[{key}]"
            else:
                child = f"{path}.{key}" if path else str(key)
            items.extend(flatten_errors(value, child))
        return items
    if isinstance(detail, list):
        if all(not isinstance(item, (dict, list)) for item in detail):
            return [_field_error(path, item) for item in detail]
        items = []
        for index, value in enumerate(detail):
            if value:
                items.extend(flatten_errors(value, f"{path}[{index}]"))
        return items
    return [_field_error(path, detail)]


def _field_error(path, detail):
    return {"field": path or None, "code": getattr(detail, "code", "invalid"), "message": str(detail)}


def error_body(status_code, code, message, fields=None):
    body = {"status": status_code, "code": code, "message": message}
    if fields:
        body["fields"] = fields
    return {"error": body}


def exception_handler(exc, context):
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied()
    elif isinstance(exc, (OperationalError, InterfaceError)):
        logger.warning("Database unavailable, answering 503: %s", exc)
        exc = DatabaseUnavailable()
    elif isinstance(exc, DataError) and context["request"].method in permissions.SAFE_METHODS:
        logger.warning("Query value refused by the database, answering 400: %s", exc)
        exc = exceptions.ValidationError("A query value cannot be used by the database.")
    if not isinstance(exc, exceptions.APIException):
        return None

    headers = {}
    if getattr(exc, "auth_header", None):
        headers["WWW-Authenticate"] = exc.auth_header
    if getattr(exc, "wait", None):
        headers["Retry-After"] = "%d" % exc.wait

    if isinstance(exc, exceptions.ValidationError):
        fields = flatten_errors(exc.detail)
        message = "; ".join(f"{f['field']}: {f['message']}" if f["field"] else f["message"] for f in fields[:5])
        body = error_body(exc.status_code, "invalid", message or "Invalid input.", fields)
    else:
        detail = exc.detail
        message = str(detail) if not isinstance(detail, (dict, list)) else "Request failed."
        body = error_body(exc.status_code, getattr(detail, "code", None) or exc.default_code, message)
        if isinstance(detail, (dict, list)):
            body["error"]["fields"] = flatten_errors(detail)

    set_rollback()
    return Response(body, status=exc.status_code, headers=headers)


class PayloadTooLarge(exceptions.APIException):
    status_code = status.HTTP_413_REQUEST_ENTITY_TOO_LARGE
    default_detail = "Request body is too large."
    default_code = "payload_too_large"


class DatabaseUnavailable(exceptions.APIException):
    status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    default_detail = "The database is unavailable; retry shortly."
    default_code = "database_unavailable"
    # Seconds a client should wait: a database restart usually takes a few.
    wait = 2
