"""A Segment-compatible tracking API, so existing Segment SDKs can send to us.

Point an SDK's host at `<site>/api/segment`: the SDKs post to `/v1/batch`
(and `/v1/track`, `/v1/identify`, ...) with the write key as the HTTP Basic
user name; here the write key is an API key with the `ingest` scope.

- group    upserts the account whose external id is `groupId`; traits named
           like account fields (name, plan, domain, mrr, currency,
           signup_date, trial_ends_at, contract_start, renewal_date,
           card_expires_at) set them, other traits go to `attributes`.
- identify upserts the contact whose external id is `userId`, under the
           account named by `context.groupId`, `traits.groupId` or
           `traits.company.id` (company traits map like group traits), else
           the group the same user joined in this batch; an existing
           contact keeps its account when none is named. Traits
           email, name (or firstName + lastName), title and role set fields,
           the rest go to `attributes`.
- track    stores a usage event (messageId, event, timestamp, properties)
           for the account in `context.groupId`, else the contact's account.
- page     stores a "page_viewed" event; the page's name and category join
           its properties, so one event name counts every page view.

In a batch, groups apply first, then identifies, then events, so a batch
may introduce an account and use it. Answers `{"success": true}` with
`stored`, `duplicates` and per-item `errors`; 400 when no message is valid.
"""

import base64
import binascii
import uuid

from django.utils import timezone
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import authentication, exceptions, serializers
from rest_framework.response import Response

from csplatform.sql import OneOf
from csplatform.tenancy.api.authentication import ApiKeyAuthentication, acting_user
from csplatform.tenancy.api.viewsets import TenantAPIView
from csplatform.tenancy.models import Scope

from ..ingest import events_ingest
from ..models import Account, Contact, ContactRole
from ..services import account_upsert, contact_upsert
from .ingest_serializers import (
    AwareDateTimeField,
    EventItemErrorSerializer,
    ItemErrors,
    JSONObjectField,
    PropertiesField,
    StrictCharField,
    plain_string,
    report_repeated_ids,
)
from .ingest_views import IngestJSONParser, batch_items

PAGE_EVENT = "page_viewed"


class WriteKeyAuthentication(authentication.BaseAuthentication):
    """HTTP Basic with the API key as user name and an empty password, as Segment SDKs send the write key."""

    def authenticate(self, request):
        scheme, _, credentials = authentication.get_authorization_header(request).partition(b" ")
        if scheme.lower() != b"basic":
            return None
        try:
            user_name = base64.b64decode(credentials.strip(), validate=True).decode("utf-8").partition(":")[0]
        except (binascii.Error, UnicodeDecodeError):
            raise exceptions.AuthenticationFailed("Malformed Basic credentials.")
        return ApiKeyAuthentication.authenticate_key(user_name)

    def authenticate_header(self, request):
        return 'Basic realm="segment"'


class WriteKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = WriteKeyAuthentication
    name = "segmentWriteKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "basic", "description": "The API key as user name, empty password."}


class SegmentJSONParser(IngestJSONParser):
    # Browser SDKs send beacons as text/plain; every body here is JSON.
    media_type = "*/*"


class SegmentIdField(serializers.CharField):
    """A Segment id: a string, or a number from SDKs of typed languages."""

    def __init__(self, **kwargs):
        kwargs.setdefault("max_length", 200)
        super().__init__(**kwargs)

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (str, int)):
            self.fail("invalid")
        return super().to_internal_value(str(data))


class AccountTraitsSerializer(serializers.Serializer):
    """Group (or company) traits that are account fields."""

    name = StrictCharField(max_length=200, required=False)
    plan = StrictCharField(max_length=100, required=False, allow_blank=True)
    domain = StrictCharField(max_length=253, required=False, allow_blank=True)
    mrr = serializers.DecimalField(max_digits=14, decimal_places=2, required=False)
    currency = StrictCharField(min_length=3, max_length=3, required=False)
    signup_date = serializers.DateField(required=False)
    trial_ends_at = serializers.DateTimeField(required=False)
    contract_start = serializers.DateField(required=False)
    renewal_date = serializers.DateField(required=False)
    card_expires_at = serializers.DateField(required=False)


class ContactTraitsSerializer(serializers.Serializer):
    """Identify traits that are contact fields."""

    email = serializers.EmailField(required=False, allow_blank=True)
    name = StrictCharField(max_length=200, required=False, allow_blank=True)
    title = StrictCharField(max_length=200, required=False, allow_blank=True)
    role = serializers.ChoiceField(choices=ContactRole.choices, required=False)


def under(path, detail):
    """Nest an error detail so that it reports at `path`, e.g. ("traits", "company")."""
    for key in reversed(path):
        detail = {key: detail}
    return detail


def split_traits(serializer_class, traits, path, ignore=()):
    """Model fields from the traits the serializer knows, `attributes` from the others."""
    serializer = serializer_class(data=traits)
    if not serializer.is_valid():
        raise serializers.ValidationError(under(path, serializer.errors))
    attributes = {key: value for key, value in traits.items() if key not in serializer.fields and key not in ignore}
    return {**serializer.validated_data, "attributes": attributes}


# Fields are stateless once built; building one per message cost more than the check.
SEGMENT_ID = SegmentIdField()


def optional_id(container, key, path=()):
    """The Segment id under `key` of a dict, or None."""
    value = container.get(key)
    if value is None:
        return None
    try:
        return SEGMENT_ID.run_validation(value)
    except serializers.ValidationError as exc:
        raise serializers.ValidationError(under((*path, key), exc.detail))


class MessageSerializer(serializers.Serializer):
    """Fields every Segment message may carry; other Segment fields are accepted and ignored."""

    messageId = SegmentIdField(required=False)
    timestamp = AwareDateTimeField(required=False)
    userId = SegmentIdField(required=False, allow_null=True)
    anonymousId = SegmentIdField(required=False, allow_null=True)
    # Read for groupId only, never stored, so any JSON object will do.
    context = serializers.DictField(required=False, default=dict)

    def validate_context(self, context):
        return {**context, "groupId": optional_id(context, "groupId")}


class GroupSerializer(MessageSerializer):
    groupId = SegmentIdField()
    traits = JSONObjectField(required=False, default=dict)

    def validate(self, attrs):
        attrs["account_fields"] = split_traits(AccountTraitsSerializer, attrs["traits"], ("traits",))
        return attrs


class IdentifySerializer(MessageSerializer):
    userId = SegmentIdField()
    traits = JSONObjectField(required=False, default=dict)

    def validate(self, attrs):
        traits = dict(attrs["traits"])
        parts = [traits.get(key) for key in ("firstName", "lastName")]
        parts = [part for part in parts if isinstance(part, str) and part]
        # Traits that name no one leave the stored name as it is.
        if "name" not in traits and parts:
            traits["name"] = " ".join(parts)
        company = traits.get("company") or {}
        if not isinstance(company, dict):
            raise serializers.ValidationError(under(("traits", "company"), ["Expected a JSON object."]))
        attrs["contact_fields"] = split_traits(
            ContactTraitsSerializer, traits, ("traits",), ignore={"groupId", "company"}
        )
        attrs["company_fields"] = split_traits(AccountTraitsSerializer, company, ("traits", "company"), ignore={"id"})
        attrs["account_ref"] = (
            attrs["context"]["groupId"]
            or optional_id(traits, "groupId", ("traits",))
            or optional_id(company, "id", ("traits", "company"))
        )
        return attrs


class TrackSerializer(MessageSerializer):
    event = StrictCharField(max_length=200)
    properties = PropertiesField(required=False, default=dict)


class TrackValidator:
    """Validates track messages: a plainly valid one directly, any other through `TrackSerializer`.

    As with `EventValidator`, the serializer states the contract and words
    every error; this check accepts only messages of exactly the expected
    shape (string ids, nothing to trim) and leaves all others to it.
    """

    IDS = ("messageId", "userId", "anonymousId")

    def __init__(self):
        self.serializer = TrackSerializer()
        fields = self.serializer.fields
        self.id_length, self.event_length = fields["messageId"].max_length, fields["event"].max_length
        self.timestamp, self.properties = fields["timestamp"], fields["properties"]

    def run_validation(self, message):
        data = self.plain(message)
        return data if data is not None else self.serializer.run_validation(message)

    def plain(self, message):
        context = message.get("context", {})
        if not isinstance(context, dict) or not plain_string(message.get("event"), self.event_length):
            return None
        data = {}
        for name in self.IDS:
            if name not in message:
                continue
            # userId and anonymousId may be null; a null messageId is the serializer's to refuse.
            if not (plain_string(message[name], self.id_length) or (message[name] is None and name != "messageId")):
                return None
            data[name] = message[name]
        group_id = context.get("groupId")
        if group_id is not None and not plain_string(group_id, self.id_length):
            return None
        try:
            if "timestamp" in message:
                data["timestamp"] = self.timestamp.to_internal_value(message["timestamp"])
            data["properties"] = self.properties.to_internal_value(message.get("properties", {}))
        except serializers.ValidationError:
            return None
        return {**data, "event": message["event"], "context": {**context, "groupId": group_id}}


class PageSerializer(MessageSerializer):
    name = StrictCharField(max_length=200, required=False, allow_null=True, allow_blank=True)
    category = StrictCharField(max_length=200, required=False, allow_null=True, allow_blank=True)
    properties = PropertiesField(required=False, default=dict)

    def validate(self, attrs):
        page = {key: attrs[key] for key in ("name", "category") if attrs.get(key)}
        attrs["event"] = PAGE_EVENT
        attrs["properties"] = {**attrs["properties"], **page}
        return attrs


VALIDATORS = {
    "group": GroupSerializer,
    "identify": IdentifySerializer,
    "track": TrackValidator,
    "page": PageSerializer,
}
EVENT_TYPES = ("track", "page")


def segment_messages_ingest(*, tenant, messages, errors, actor=None, shared_context=None):
    """Validate and apply Segment messages from `actor`, reporting into `errors`; returns the `IngestResult`.

    1. Validate each message with the validator of its type.
    2. Apply groups, then identifies, through the account and contact services.
    3. Resolve each event's account (context.groupId, else the user's
       contact) and contact within the tenant, and ingest them in one call.
    """
    parsed = []
    # One validator per type for the whole batch: building a serializer's fields per message cost more than validating.
    validators = {}
    for index, message in enumerate(messages):
        if not isinstance(message, dict):
            errors.add(index, None, "invalid", "Expected a JSON object.")
            continue
        kind = message.get("type")
        validator_class = VALIDATORS.get(kind) if isinstance(kind, str) else None
        if validator_class is None:
            errors.add(index, "type", "invalid", f"Unsupported type; expected one of {', '.join(VALIDATORS)}.")
            continue
        if shared_context and isinstance(message.get("context", {}), dict):
            message = {**message, "context": {**shared_context, **message.get("context", {})}}
        if kind not in validators:
            validators[kind] = validator_class()
        try:
            parsed.append((index, kind, validators[kind].run_validation(message)))
        except serializers.ValidationError as exc:
            errors.add_detail(index, serializers.as_serializer_error(exc))
    event_messages = [(index, data) for index, kind, data in parsed if kind in EVENT_TYPES]
    message_ids = ((index, data["messageId"]) for index, data in event_messages if "messageId" in data)
    report_repeated_ids(message_ids, errors, "messageId")

    # The account each user was grouped with in this batch, for identifies that name none.
    grouped = {}
    for index, kind, data in parsed:
        if kind == "group":
            account_upsert(tenant=tenant, external_id=data["groupId"], fields=data["account_fields"], actor=actor)
            if data.get("userId"):
                grouped[data["userId"]] = data["groupId"]
    for index, kind, data in parsed:
        if kind == "identify":
            identify_apply(tenant, index, data, errors, grouped.get(data["userId"]), actor)

    still_valid = [(index, data) for index, data in event_messages if index not in errors.bad]
    events = events_resolve(tenant, still_valid, errors)
    errors.items.sort(key=lambda error: error["index"])
    return events_ingest(tenant=tenant, events=events)


def identify_apply(tenant, index, data, errors, grouped_account_ref, actor):
    account_ref = data["account_ref"] or grouped_account_ref
    if account_ref:
        account, _ = account_upsert(
            tenant=tenant, external_id=account_ref, fields=data["company_fields"], actor=actor
        )
    else:
        contacts = Contact.objects.for_tenant(tenant).select_related("account")
        existing = contacts.filter(external_id=data["userId"]).first()
        if existing is None:
            errors.add(
                index,
                "context.groupId",
                "unknown_account",
                "A new contact needs its account: context.groupId, traits.groupId or traits.company.id.",
            )
            return
        account = existing.account
    contact_upsert(
        tenant=tenant, external_id=data["userId"], account=account, fields=data["contact_fields"], actor=actor
    )


def events_resolve(tenant, event_messages, errors):
    """Events for `events_ingest` from validated track and page messages."""
    group_ids = {data["context"]["groupId"] for _, data in event_messages} - {None}
    user_ids = {data["userId"] for _, data in event_messages if data.get("userId")}
    accounts = dict(
        Account.objects.for_tenant(tenant).filter(OneOf("external_id", group_ids)).values_list("external_id", "id")
    )
    contacts = {
        external_id: (pk, account_id)
        for external_id, pk, account_id in Contact.objects.for_tenant(tenant)
        .filter(OneOf("external_id", user_ids))
        .values_list("external_id", "id", "account_id")
    }
    events = []
    for index, data in event_messages:
        contact_id, contact_account_id = contacts.get(data.get("userId"), (None, None))
        group_id = data["context"]["groupId"]
        account_id = accounts.get(group_id) if group_id is not None else contact_account_id
        if account_id is None:
            errors.add(index, "context.groupId", "unknown_account", "unknown account")
            continue
        events.append(
            {
                # Segment's HTTP API also names messages that come without an id.
                "message_id": data.get("messageId") or str(uuid.uuid4()),
                "account_id": account_id,
                "contact_id": contact_id,
                "event": data["event"],
                "timestamp": data.get("timestamp") or timezone.now(),
                "properties": data["properties"],
            }
        )
    return events


class SegmentResultSerializer(serializers.Serializer):
    success = serializers.BooleanField()
    stored = serializers.IntegerField(help_text="Usage events stored by this request.")
    duplicates = serializers.IntegerField(help_text="Usage events whose messageId was already stored.")
    errors = EventItemErrorSerializer(many=True, help_text="Refused messages, each with its index and field path.")


class SegmentView(TenantAPIView):
    authentication_classes = [WriteKeyAuthentication]
    required_scope = Scope.INGEST
    parser_classes = [SegmentJSONParser]

    def respond(self, messages, errors, shared_context=None):
        result = segment_messages_ingest(
            tenant=self.tenant, messages=messages, errors=errors, actor=acting_user(self.request),
            shared_context=shared_context,
        )
        if messages and len(errors.bad) == len(messages):
            raise errors.as_validation_error()
        return Response(
            {"success": True, "stored": result.stored, "duplicates": result.duplicates, "errors": errors.items}
        )


SEGMENT_RESPONSES = {
    200: SegmentResultSerializer,
    400: OpenApiResponse(description="Malformed body, or no valid message; `fields` lists the errors."),
    401: OpenApiResponse(description="Missing or unknown write key (HTTP Basic user name)."),
    403: OpenApiResponse(description="The API key lacks the ingest scope."),
    413: OpenApiResponse(description="Too many messages or too many bytes."),
}


class SegmentBatchView(SegmentView):
    """Segment's `/v1/batch` (and `/v1/import`): `{"batch": [messages], "context": {...}}`."""

    @extend_schema(request=dict, responses=SEGMENT_RESPONSES)
    def post(self, request):
        messages = batch_items(request.data, "batch", allow_empty=True)
        shared_context = request.data.get("context")
        return self.respond(
            messages, ItemErrors("batch"), shared_context if isinstance(shared_context, dict) else None
        )


class SegmentMessageView(SegmentView):
    """One Segment message posted to the endpoint named after its type."""

    message_type = None

    @extend_schema(request=dict, responses=SEGMENT_RESPONSES)
    def post(self, request):
        if not isinstance(request.data, dict):
            raise exceptions.ValidationError({"non_field_errors": ["The body must be a JSON object."]})
        return self.respond([{**request.data, "type": self.message_type}], ItemErrors())


class SegmentTrackView(SegmentMessageView):
    message_type = "track"


class SegmentIdentifyView(SegmentMessageView):
    message_type = "identify"


class SegmentGroupView(SegmentMessageView):
    message_type = "group"


class SegmentPageView(SegmentMessageView):
    message_type = "page"
