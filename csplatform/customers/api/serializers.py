from django.utils.encoding import smart_str
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from csplatform.tenancy.api.authentication import acting_user
from csplatform.tenancy.api.errors import flatten_errors
from csplatform.tenancy.api.fields import TenantMemberField, TenantRelatedField
from csplatform.tenancy.models import User

from .. import services
from ..models import (
    Account,
    AccountChange,
    AccountNote,
    Contact,
    ContactChange,
    currency_code,
    renewal_after_contract,
)
from .ingest_serializers import json_problem, string_problem

BULK_MAX_ITEMS = 1000


class RejectUnknownFieldsMixin:
    """A 400 naming every input key the serializer does not know.

    A misspelt field (`renewal_data`) silently ignored is data lost without
    anyone noticing. Read-only fields are known, so a client may send back
    what it read.
    """

    def to_internal_value(self, data):
        if isinstance(data, dict):
            unknown = sorted(str(key) for key in data if key not in self.fields)
            if unknown:
                raise serializers.ValidationError({key: ["Unknown field."] for key in unknown}, code="unknown_field")
        return super().to_internal_value(data)


def storable_strings(values):
    """The strings among `values` that the database can compare; the others fail validation item by item."""
    return {value for value in values if isinstance(value, str) and string_problem(value) is None}


class PreloadedSlugMixin:
    """Resolve the slug from `context["preloaded"][field_name]` when the caller loaded them.

    Batch paths (bulk upsert, CSV import) load every owner and account of the
    batch in one query each instead of one query per item; a single request
    looks up as usual.
    """

    def to_internal_value(self, data):
        preloaded = self.context.get("preloaded", {}).get(self.field_name)
        if preloaded is None:
            return super().to_internal_value(data)
        if not isinstance(data, str):
            self.fail("invalid")
        try:
            return preloaded[self.preload_key(data)]
        except KeyError:
            self.fail("does_not_exist", slug_name=self.slug_field, value=smart_str(data))

    @staticmethod
    def preload_key(value):
        return value


class MemberField(PreloadedSlugMixin, TenantMemberField):
    @staticmethod
    def preload_key(value):
        return value.strip().lower()

    @classmethod
    def preload(cls, tenant, values):
        emails = {cls.preload_key(value) for value in storable_strings(values)}
        users = User.objects.members_of(tenant).filter(email__in=emails)
        return {user.email.lower(): user for user in users}


class AccountRefField(PreloadedSlugMixin, TenantRelatedField):
    default_error_messages = {"does_not_exist": "No account has the external id {value}."}

    @staticmethod
    def preload(tenant, values):
        accounts = Account.objects.for_tenant(tenant).filter(external_id__in=storable_strings(values))
        return {account.external_id: account for account in accounts}


ATTRIBUTES_HELP = "A JSON object. Create and update replace it; upserts and imports merge into the stored one."


def validate_attributes_object(value):
    if not isinstance(value, dict):
        raise serializers.ValidationError("Must be a JSON object.")
    # The same limits as attributes arriving through ingest traits: PostgreSQL's jsonb refuses NUL.
    problem = json_problem(value)
    if problem:
        raise serializers.ValidationError(problem)
    return value


def validate_unique_external_id(serializer, model, value):
    """Another row of the tenant may not hold this external id (the constraint would answer 500)."""
    rows = model.objects.for_tenant(serializer.context["tenant"]).filter(external_id=value)
    if serializer.instance is not None:
        rows = rows.exclude(pk=serializer.instance.pk)
    if rows.exists():
        raise serializers.ValidationError(f"A {model._meta.verbose_name} with this external id already exists.")
    return value


class AccountSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    owner = MemberField(required=False, allow_null=True, help_text="Email of a member of the tenant.")

    class Meta:
        model = Account
        fields = [
            "id",
            "external_id",
            "name",
            "domain",
            "owner",
            "plan",
            "mrr",
            "currency",
            "signup_date",
            "trial_ends_at",
            "contract_start",
            "renewal_date",
            "card_expires_at",
            "attributes",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {
            "mrr": {"min_value": 0},
            "currency": {"help_text": "ISO 4217 code, e.g. USD."},
            "attributes": {"help_text": ATTRIBUTES_HELP},
        }

    def validate_external_id(self, value):
        return validate_unique_external_id(self, Account, value)

    def validate_currency(self, value):
        return currency_code(value)

    def validate_attributes(self, value):
        return validate_attributes_object(value)

    def create(self, validated_data):
        tenant = validated_data.pop("tenant")
        return services.account_create(tenant=tenant, fields=validated_data)

    def update(self, instance, validated_data):
        return services.account_update(
            tenant=self.context["tenant"], account=instance, fields=validated_data,
            actor=acting_user(self.context["request"]),
        )

    def validate(self, attrs):
        renewal_after_contract(self._current(attrs, "contract_start"), self._current(attrs, "renewal_date"))
        return attrs

    def _current(self, attrs, name):
        """The value after this write: the input's, else the stored one."""
        if name in attrs:
            return attrs[name]
        return getattr(self.instance, name, None)


class UpsertMixin:
    """An upsert body: every field optional, a missing one keeps its stored value.

    `external_id` names the row to create or update rather than claiming a
    new one, so it is not checked for uniqueness.
    """

    def get_fields(self):
        fields = super().get_fields()
        for field in fields.values():
            field.required = False
        return fields

    def validate_external_id(self, value):
        return value


class AccountUpsertSerializer(UpsertMixin, AccountSerializer):
    pass


class ContactSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    account = AccountRefField(
        queryset=Account.objects, slug_field="external_id", help_text="The account's external id."
    )

    class Meta:
        model = Contact
        fields = [
            "id",
            "external_id",
            "account",
            "email",
            "name",
            "title",
            "role",
            "last_seen_at",
            "attributes",
            "unsubscribed",
            "created_at",
            "updated_at",
        ]
        read_only_fields = ["id", "created_at", "updated_at"]
        extra_kwargs = {"attributes": {"help_text": ATTRIBUTES_HELP}}

    def validate_external_id(self, value):
        return validate_unique_external_id(self, Contact, value)

    def validate_attributes(self, value):
        return validate_attributes_object(value)

    def validate(self, attrs):
        if self.instance is None and "account" not in attrs:
            raise serializers.ValidationError({"account": "An account is required to create a contact."})
        return attrs

    def create(self, validated_data):
        tenant = validated_data.pop("tenant")
        return services.contact_create(
            tenant=tenant, fields=validated_data, actor=acting_user(self.context["request"])
        )

    def update(self, instance, validated_data):
        return services.contact_update(
            tenant=self.context["tenant"], contact=instance, fields=validated_data,
            actor=acting_user(self.context["request"]),
        )


class ContactUpsertSerializer(UpsertMixin, ContactSerializer):
    """`account` is needed only to create the contact."""


class AccountNoteSerializer(RejectUnknownFieldsMixin, serializers.ModelSerializer):
    account = AccountRefField(
        queryset=Account.objects, slug_field="external_id", help_text="The account's external id."
    )
    author = serializers.SlugRelatedField(
        slug_field="email", read_only=True, help_text="Who wrote it: the API key's creator for notes sent here."
    )
    key = serializers.CharField(
        required=False,
        max_length=100,
        help_text="Optional, on create: a note sent again with the same key is stored once.",
    )

    class Meta:
        model = AccountNote
        fields = ["id", "account", "author", "body", "pinned", "key", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def validate(self, attrs):
        if self.instance is not None:
            if "account" in attrs and attrs["account"] != self.instance.account:
                raise serializers.ValidationError({"account": "A note stays on its account."})
            if "key" in attrs and attrs["key"] != self.instance.key:
                raise serializers.ValidationError({"key": "A note's key is set when it is created."})
        return attrs

    def create(self, validated_data):
        return services.note_add(author=acting_user(self.context["request"]), **validated_data)

    def update(self, instance, validated_data):
        changes = {name: validated_data[name] for name in ("body", "pinned") if name in validated_data}
        return services.note_update(tenant=self.context["tenant"], note=instance, **changes)


BULK_ITEMS_HELP = f"Up to {BULK_MAX_ITEMS} items, each with its external_id."


class BulkAccountsSerializer(serializers.Serializer):
    items = AccountUpsertSerializer(many=True, max_length=BULK_MAX_ITEMS, help_text=BULK_ITEMS_HELP)


class BulkContactsSerializer(serializers.Serializer):
    items = ContactUpsertSerializer(many=True, max_length=BULK_MAX_ITEMS, help_text=BULK_ITEMS_HELP)


class ItemErrorSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    field = serializers.CharField(allow_null=True)
    code = serializers.CharField()
    message = serializers.CharField()


class BulkResultSerializer(serializers.Serializer):
    created = serializers.IntegerField()
    updated = serializers.IntegerField()
    errors = ItemErrorSerializer(many=True)


class ImportFileSerializer(serializers.Serializer):
    file = serializers.FileField(help_text="A UTF-8 CSV file with a header row.")


class ImportResultSerializer(serializers.Serializer):
    rows = serializers.IntegerField()
    created = serializers.IntegerField()
    updated = serializers.IntegerField()


def item_error(index, field, code, message):
    return {"index": index, "field": field, "code": code, "message": str(message)}


def validate_upsert_batch(serializer_class, items, *, tenant):
    """Validate upsert items (dicts) as one batch; returns `(valid, errors)`.

    1. Load the owners or accounts the batch names and the rows it would
       update, one query each, instead of a few queries per item.
    2. An item repeating an earlier item's external id is an error.
    3. Validate each item against its stored row, as a single upsert would.

    `valid` holds validated data dicts, each with its `external_id`; each
    error is `{"index", "field", "code", "message"}`, `field` relative to
    the item (None for the item as a whole).
    """
    model = serializer_class.Meta.model
    objects = [item for item in items if isinstance(item, dict)]
    preloaded = {
        name: field.preload(tenant, [item.get(name) for item in objects])
        for name, field in serializer_class().fields.items()
        if isinstance(field, PreloadedSlugMixin)
    }
    raw_ids = storable_strings(item.get("external_id") for item in objects)
    existing = services.rows_by_external_id(model.objects.for_tenant(tenant), [value.strip() for value in raw_ids])
    serializer = serializer_class(context={"tenant": tenant, "preloaded": preloaded}, partial=True)
    valid, errors, seen = [], [], set()
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            errors.append(item_error(index, None, "invalid", "Must be an object."))
            continue
        external_id = item.get("external_id")
        if not isinstance(external_id, str) or not external_id.strip():
            errors.append(item_error(index, "external_id", "required", "This field is required."))
            continue
        external_id = external_id.strip()
        if external_id in seen:
            message = "Duplicate external id: an earlier entry has it."
            errors.append(item_error(index, "external_id", "duplicate", message))
            continue
        seen.add(external_id)
        serializer.instance = existing.get(external_id)
        try:
            valid.append(serializer.run_validation(item))
        except serializers.ValidationError as exc:
            errors.extend(item_error(index, e["field"], e["code"], e["message"]) for e in flatten_errors(exc.detail))
    return valid, errors


class FieldChangeSerializer(serializers.ModelSerializer):
    """What a change of any record says: who made it, and each field's value before and after."""

    account = serializers.SlugRelatedField(slug_field="external_id", read_only=True, help_text="Its external id.")
    by = serializers.CharField(source="actor_label", help_text="Who made it, and through which API key; empty "
                               "when the platform did.")
    by_email = serializers.EmailField(source="actor.email", allow_null=True, default=None)
    changes = serializers.SerializerMethodField(help_text="Each changed field: its value before (`from`) and after "
                                                "(`to`), as the record's API writes them.")

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_changes(self, change):
        return {
            name: {"from": self.written(name, old), "to": self.written(name, new)}
            for name, (old, new) in change.fields.items()
        }

    def written(self, name, value):
        return value


class AccountChangeSerializer(FieldChangeSerializer):
    """A change of an account's owner or details; the owners are named by email, as the accounts API names them.

    The context's `owners` are `AccountChange.owners_named` of the changes serialized.
    """

    class Meta:
        model = AccountChange
        fields = ["id", "account", "account_id", "at", "by", "by_email", "changes"]

    def written(self, name, value):
        if name != "owner" or value is None:
            return value
        owners = self.context["owners"]
        return owners[value].email if value in owners else None


class ContactChangeSerializer(FieldChangeSerializer):
    """A contact's addition, a change of its details, or its removal, with the account the contact was with
    then."""

    contact = serializers.SlugRelatedField(
        slug_field="external_id", read_only=True, help_text="Its external id; null once the contact is removed."
    )
    contact_name = serializers.CharField(read_only=True, help_text="Its name (else email) at the change.")
    added = serializers.BooleanField(read_only=True, help_text="The contact was added: `changes` holds what it "
                                     "was given, each field from null.")
    removed = serializers.BooleanField(read_only=True, help_text="The contact was removed: `changes` holds what "
                                       "it had, each field going to null.")

    class Meta:
        model = ContactChange
        fields = [
            "id", "contact", "contact_id", "contact_name", "added", "removed", "account", "account_id", "at", "by",
            "by_email", "changes",
        ]
