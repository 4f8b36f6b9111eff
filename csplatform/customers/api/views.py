from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins
from rest_framework import serializers as drf_serializers
from rest_framework import status, viewsets
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from csplatform.tenancy.api.authentication import acting_user
from csplatform.tenancy.api.errors import PayloadTooLarge, error_body
from csplatform.tenancy.api.pagination import NewestFirstCursorPagination
from csplatform.tenancy.api.viewsets import TenantModelViewSet, TenantScopedMixin

from .. import imports, services
from ..models import Account, AccountChange, AccountNote, Contact, ContactChange
from .filtersets import (
    AccountChangeFilterSet,
    AccountFilterSet,
    AccountNoteFilterSet,
    ContactChangeFilterSet,
    ContactFilterSet,
)
from .serializers import (
    BULK_MAX_ITEMS,
    AccountChangeSerializer,
    AccountNoteSerializer,
    AccountSerializer,
    AccountUpsertSerializer,
    BulkAccountsSerializer,
    BulkContactsSerializer,
    BulkResultSerializer,
    ContactChangeSerializer,
    ContactSerializer,
    ContactUpsertSerializer,
    ImportFileSerializer,
    ImportResultSerializer,
    validate_upsert_batch,
)

EXTERNAL_ID_PARAMETER = OpenApiParameter("external_id", OpenApiTypes.STR, OpenApiParameter.PATH)
INVALID_RESPONSE = OpenApiResponse(description="Invalid input; `error.fields` names each invalid field.")
TOO_LARGE_RESPONSE = OpenApiResponse(description="Too many items or too large a file.")


class UpsertActionsMixin:
    """Upsert by external id, one or a batch, and CSV import, on top of the CRUD viewset.

    Subclasses name `upsert_serializer_class` and `kind` (as `imports` knows
    it) and implement `upsert_one(external_id, instance, fields)` and
    `bulk_write(items)` with the services.
    """

    lookup_value_regex = "[0-9]+"
    upsert_serializer_class = None
    kind = None

    @action(detail=False, methods=["put"], url_path=r"by-external-id/(?P<external_id>[^/]+)", filterset_class=None)
    def upsert(self, request, external_id):
        """Create or update the row with this external id: 201 or 200.

        Fields left out keep their stored value; `attributes` merge into the
        stored ones.
        """
        instance = self.get_queryset().filter(external_id=external_id).first()
        data = request.data
        if isinstance(data, dict):
            # The URL's external id goes through the same checks as a body's.
            data = data.copy()
            data.setdefault("external_id", external_id)
        serializer = self.upsert_serializer_class(
            instance, data=data, partial=True, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        if fields.pop("external_id") != external_id:
            raise drf_serializers.ValidationError({"external_id": "Must match the external id in the URL."})
        obj, created = self.upsert_one(external_id, instance, fields)
        return Response(
            self.get_serializer(obj).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK
        )

    @action(detail=False, methods=["post"], filterset_class=None, pagination_class=None)
    def bulk(self, request):
        """Upsert up to 1,000 items; invalid items are reported, valid ones stored.

        A well-formed batch answers 200 even if some items were refused:
        `errors` lists them by index and field path.
        """
        data = request.data
        items = data.get("items") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise drf_serializers.ValidationError({"items": "Must be a list of objects."})
        if unknown := sorted(set(data) - {"items"}):
            raise drf_serializers.ValidationError({key: "Unknown field." for key in unknown})
        if len(items) > BULK_MAX_ITEMS:
            raise PayloadTooLarge(f"At most {BULK_MAX_ITEMS} items per request; this one has {len(items)}.")
        valid, errors = validate_upsert_batch(self.upsert_serializer_class, items, tenant=self.tenant)
        created, updated = self.bulk_write(valid)
        for error in errors:
            error["field"] = f"items[{error['index']}]" + (f".{error['field']}" if error["field"] else "")
        return Response({"created": created, "updated": updated, "errors": errors})

    @action(detail=False, methods=["post"], url_path="import", parser_classes=[MultiPartParser], filterset_class=None)
    def import_csv(self, request):
        """Import a CSV file, all or nothing (see `csplatform.customers.imports`)."""
        if int(request.META.get("CONTENT_LENGTH") or 0) > imports.MAX_IMPORT_BYTES + 64 * 1024:
            raise PayloadTooLarge(imports.too_large_message())
        upload = request.FILES.get("file")
        if upload is None:
            raise drf_serializers.ValidationError({"file": "Upload the CSV file in the multipart field 'file'."})
        if upload.size > imports.MAX_IMPORT_BYTES:
            raise PayloadTooLarge(imports.too_large_message())
        try:
            result = imports.csv_import(
                tenant=self.tenant, kind=self.kind, content=upload.read(), actor=acting_user(request)
            )
        except imports.CsvImportError as exc:
            fields = [{**problem, "field": problem_path(problem)} for problem in exc.problems]
            return Response(error_body(400, exc.code, exc.message, fields), status=status.HTTP_400_BAD_REQUEST)
        return Response(result.as_dict())


def problem_path(problem):
    path = f"rows[{problem['row']}]"
    return f"{path}.{problem['column']}" if problem["column"] else path


def upsert_schema(request_serializer, response_serializer, kind):
    return extend_schema(
        summary=f"Create or update one of the {kind} by external id",
        request=request_serializer,
        responses={200: response_serializer, 201: response_serializer, 400: INVALID_RESPONSE},
        parameters=[EXTERNAL_ID_PARAMETER],
    )


def bulk_schema(request_serializer, kind):
    return extend_schema(
        summary=f"Upsert up to {BULK_MAX_ITEMS} {kind}; invalid items are reported, valid ones stored",
        request=request_serializer,
        responses={200: BulkResultSerializer, 400: INVALID_RESPONSE, 413: TOO_LARGE_RESPONSE},
    )


def import_schema(kind):
    return extend_schema(
        summary=f"Import {kind} from a CSV file, all or nothing",
        request={"multipart/form-data": ImportFileSerializer},
        responses={200: ImportResultSerializer, 400: INVALID_RESPONSE, 413: TOO_LARGE_RESPONSE},
    )


@extend_schema_view(
    upsert=upsert_schema(AccountUpsertSerializer, AccountSerializer, "accounts"),
    bulk=bulk_schema(BulkAccountsSerializer, "accounts"),
    import_csv=import_schema("accounts"),
)
class AccountViewSet(UpsertActionsMixin, TenantModelViewSet):
    queryset = Account.objects
    serializer_class = AccountSerializer
    filterset_class = AccountFilterSet
    upsert_serializer_class = AccountUpsertSerializer
    kind = "accounts"

    def upsert_one(self, external_id, instance, fields):
        return services.account_upsert(
            tenant=self.tenant, external_id=external_id, fields=fields, actor=acting_user(self.request)
        )

    def bulk_write(self, items):
        return services.account_bulk_upsert(tenant=self.tenant, items=items, actor=acting_user(self.request))


@extend_schema_view(
    upsert=upsert_schema(ContactUpsertSerializer, ContactSerializer, "contacts"),
    bulk=bulk_schema(BulkContactsSerializer, "contacts"),
    import_csv=import_schema("contacts"),
)
class ContactViewSet(UpsertActionsMixin, TenantModelViewSet):
    queryset = Contact.objects
    serializer_class = ContactSerializer
    filterset_class = ContactFilterSet
    upsert_serializer_class = ContactUpsertSerializer
    kind = "contacts"

    def upsert_one(self, external_id, instance, fields):
        account = fields.pop("account", None) or instance.account
        return services.contact_upsert(
            tenant=self.tenant, external_id=external_id, account=account, fields=fields, actor=acting_user(self.request)
        )

    def bulk_write(self, items):
        return services.contact_bulk_upsert(tenant=self.tenant, items=items, actor=acting_user(self.request))

    def perform_destroy(self, instance):
        services.contact_delete(tenant=self.tenant, contact=instance, actor=acting_user(self.request))


class AccountNoteViewSet(TenantModelViewSet):
    """Notes on accounts, pinned first, then newest first; notes sent here are written by the key's creator."""

    queryset = AccountNote.objects
    serializer_class = AccountNoteSerializer
    filterset_class = AccountNoteFilterSet

    def perform_destroy(self, instance):
        services.note_delete(tenant=self.tenant, note=instance)


class ChangeCursorPagination(NewestFirstCursorPagination):
    ordering = ("-at", "-id")


class AccountChangeViewSet(TenantScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Who changed which account's owner or details, from what to what, newest first: through the pages, the API,
    imports or the Segment API. Keep the time of the latest change read and pass it as `since` next time to read
    only the newer ones."""

    queryset = AccountChange.objects
    serializer_class = AccountChangeSerializer
    filterset_class = AccountChangeFilterSet
    pagination_class = ChangeCursorPagination

    def list(self, request, *args, **kwargs):
        page = self.paginate_queryset(self.filter_queryset(self.get_queryset()))
        context = {**self.get_serializer_context(), "owners": AccountChange.owners_named(page)}
        return self.get_paginated_response(self.get_serializer(page, many=True, context=context).data)


class ContactChangeViewSet(TenantScopedMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Who changed which contact's name, email, title, role or email consent, from what to what, newest first:
    through the pages, the API, imports or the Segment API. Read only the newer ones with `since`, as for
    accounts."""

    queryset = ContactChange.objects
    serializer_class = ContactChangeSerializer
    filterset_class = ContactChangeFilterSet
    pagination_class = ChangeCursorPagination
