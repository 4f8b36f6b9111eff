import zlib

import django_filters
from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions
from rest_framework.response import Response

from csplatform.tenancy.api.errors import PayloadTooLarge
from csplatform.tenancy.api.filters import DateTimeFilter
from csplatform.tenancy.api.pagination import NewestFirstCursorPagination
from csplatform.tenancy.api.parsers import JSONParser
from csplatform.tenancy.api.viewsets import TenantAPIView
from csplatform.tenancy.models import Scope

from ..ingest import events_ingest
from ..models import Account, UsageEvent
from .ingest_serializers import (
    EventBatchInSerializer,
    EventBatchResultSerializer,
    UsageEventSerializer,
    event_batch_validate,
    printable_name,
)


class IngestJSONParser(JSONParser):
    """The API's JSON, under the ingest size limit, plain or gzip.

    The declared Content-Length is checked before anything is read and at
    most one byte over the limit is ever read, so an oversize body answers
    413 without being parsed. A gzip body is limited again after
    decompression, which stops a small bomb from expanding into memory.
    """

    def parse(self, stream, media_type=None, parser_context=None):
        meta = parser_context["request"].META
        max_bytes = settings.CSP_INGEST_MAX_BYTES
        try:
            declared = int(meta.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise exceptions.ParseError("Content-Length is not a number.")
        if declared > max_bytes:
            raise too_large_bytes(max_bytes)
        body = stream.read(max_bytes + 1)
        if len(body) > max_bytes:
            raise too_large_bytes(max_bytes)
        encoding = meta.get("HTTP_CONTENT_ENCODING", "identity").strip().lower()
        if encoding == "gzip":
            body = gunzip(body, max_bytes)
        elif encoding != "identity":
            raise exceptions.UnsupportedMediaType(
                media_type, detail=f"Content-Encoding {encoding!r} is not supported; send identity or gzip."
            )
        return self.loads(body, parser_context)


def too_large_bytes(max_bytes):
    return PayloadTooLarge(f"The request body is larger than {max_bytes} bytes.")


def gunzip(body, max_bytes):
    decompressor = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
    try:
        data = decompressor.decompress(body, max_bytes + 1)
    except zlib.error as exc:
        raise exceptions.ParseError(f"The gzip body is corrupt: {exc}.")
    if len(data) > max_bytes:
        raise too_large_bytes(max_bytes)
    if not decompressor.eof:
        raise exceptions.ParseError("The gzip body is truncated.")
    return data


def batch_items(data, key, *, known_keys=None, allow_empty=False):
    """The list under `key` of a batch body, within the item limit.

    With `known_keys`, any other top-level key is refused. Raises the
    request-level errors: a body that is not an object, a missing or empty
    list (400), too many items (413).
    """
    if not isinstance(data, dict):
        raise exceptions.ValidationError({"non_field_errors": ["The body must be a JSON object."]})
    if known_keys is not None:
        unknown = sorted(set(data) - set(known_keys))
        if unknown:
            raise exceptions.ValidationError(
                {printable_name(name): [exceptions.ErrorDetail("Unknown field.", code="unknown_field")] for name in unknown}
            )
    items = data.get(key)
    if not isinstance(items, list):
        raise exceptions.ValidationError({key: ["Required: a JSON list."]})
    if not items and not allow_empty:
        raise exceptions.ValidationError({key: ["Send at least one item."]})
    max_items = settings.CSP_INGEST_MAX_ITEMS
    if len(items) > max_items:
        raise PayloadTooLarge(f"At most {max_items} items per batch; this one has {len(items)}.")
    return items


class EventBatchView(TenantAPIView):
    """Store a batch of usage events; needs an API key with the `ingest` scope.

    Each item is validated on its own. When at least one item is valid the
    answer is 200 with `stored` (new events), `duplicates` (message ids
    already stored: a retried batch stores nothing twice) and `errors`, one
    entry per refused item with its `index` and field path
    (`events[3].timestamp`). When no item is valid the answer is 400 in the
    API's error format with the same paths in `fields`. Request-level
    problems answer before any item is looked at: malformed JSON or a
    missing `events` list 400, more than CSP_INGEST_MAX_ITEMS items or
    CSP_INGEST_MAX_BYTES bytes 413. Stored events are committed before the
    answer.
    """

    required_scope = Scope.INGEST
    parser_classes = [IngestJSONParser]

    @extend_schema(
        request=EventBatchInSerializer,
        responses={
            200: EventBatchResultSerializer,
            400: OpenApiResponse(description="Malformed body, or no valid item; `fields` lists each item's errors."),
            403: OpenApiResponse(description="The API key lacks the ingest scope."),
            413: OpenApiResponse(description="Too many items or too many bytes."),
        },
    )
    def post(self, request):
        items = batch_items(request.data, "events", known_keys={"events"})
        events, errors = event_batch_validate(tenant=self.tenant, items=items)
        if not events:
            raise errors.as_validation_error()
        result = events_ingest(tenant=self.tenant, events=events)
        return Response({"stored": result.stored, "duplicates": result.duplicates, "errors": errors.items})


class AccountEventFilterSet(django_filters.FilterSet):
    event = django_filters.CharFilter(field_name="event")
    since = DateTimeFilter(field_name="timestamp", lookup_expr="gte")
    until = DateTimeFilter(field_name="timestamp", lookup_expr="lt")

    class Meta:
        model = UsageEvent
        fields = ["event", "since", "until"]


class AccountEventListView(TenantAPIView):
    """An account's usage events, newest first, in cursor pages; another tenant's account is 404."""

    pagination_class = NewestFirstCursorPagination
    filterset_class = AccountEventFilterSet

    @extend_schema(
        parameters=[
            OpenApiParameter("event", str, description="Only events with this name."),
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="Events at or after this time."),
            OpenApiParameter("until", OpenApiTypes.DATETIME, description="Events before this time."),
        ],
        responses=UsageEventSerializer(many=True),
    )
    def get(self, request, account_id):
        account = get_object_or_404(Account.objects.for_tenant(self.tenant), pk=account_id)
        events = UsageEvent.objects.for_tenant(self.tenant).filter(account=account).select_related("contact")
        filterset = self.filterset_class(request.query_params, queryset=events)
        if not filterset.is_valid():
            raise exceptions.ValidationError(filterset.errors)
        paginator = self.pagination_class()
        page = paginator.paginate_queryset(filterset.qs, request, view=self)
        return paginator.get_paginated_response(UsageEventSerializer(page, many=True).data)
