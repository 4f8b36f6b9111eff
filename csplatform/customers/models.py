import re
from decimal import Decimal

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models.fields.json import KT
from django.db.models.functions import Cast
from django.utils import timezone

from csplatform.tenancy.models import TenantModel, TenantQuerySet, User


class AccountQuerySet(TenantQuerySet):
    def dirty(self):
        return self.filter(dirty_mark__isnull=False)

    # The stages are the lifecycle app's, which sits above this one; it names the relation `lifecycle`.
    def departed(self):
        """The customers who left: the accounts in a terminal stage, such as Churned."""
        return self.filter(lifecycle__stage__is_terminal=True)

    def still_customers(self):
        """The accounts that have not left, those never placed in a stage included."""
        return self.filter(models.Q(lifecycle__isnull=True) | models.Q(lifecycle__stage__is_terminal=False))


class Account(TenantModel):
    external_id = models.CharField(max_length=200)
    name = models.CharField(max_length=200)
    domain = models.CharField(max_length=253, blank=True)
    owner = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    plan = models.CharField(max_length=100, blank=True)
    mrr = models.DecimalField("MRR", max_digits=14, decimal_places=2, default=0)
    currency = models.CharField(max_length=3, default="USD")
    signup_date = models.DateField(null=True, blank=True)
    trial_ends_at = models.DateTimeField("trial end", null=True, blank=True)
    contract_start = models.DateField(null=True, blank=True)
    renewal_date = models.DateField(null=True, blank=True)
    card_expires_at = models.DateField("card expiry", null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = AccountQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["tenant", "external_id"], name="account_unique_external_id"),
            # What the ingest tables' (tenant, account) foreign keys reference.
            models.UniqueConstraint(fields=["tenant", "id"], name="account_unique_tenant_id"),
        ]
        indexes = [
            models.Index(fields=["tenant", "name"]),
            models.Index(fields=["tenant", "owner"]),
            models.Index(fields=["tenant", "renewal_date"]),
            models.Index(fields=["tenant", "updated_at"]),
        ]

    def __str__(self):
        return self.name


class FieldChange(TenantModel):
    """Fields of a record that a member, an integration or an import changed in one write.

    `fields` maps each changed field to `[old, new]` in JSON form (dates as
    ISO text, amounts as decimal text, a related row as its id or null). Only
    the fields people read a record by are kept (FIELDS of the RECORD model):
    not its attributes, which integrations rewrite all the time.
    """

    RECORD = None
    FIELDS = ()

    at = models.DateTimeField(default=timezone.now)
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # Who, in words, as the audit log says it: an API change names its key too.
    actor_label = models.CharField(max_length=200, blank=True)
    fields = models.JSONField(encoder=DjangoJSONEncoder)

    class Meta:
        abstract = True

    @classmethod
    def of(cls, record, values):
        """`{field: [old, new]}` of the FIELDS that setting `values` (model values) on `record` would change."""
        changed = {}
        for name in cls.FIELDS:
            if name not in values:
                continue
            field = cls.RECORD._meta.get_field(name)
            old, new = getattr(record, field.attname), values[name]
            if field.is_relation:
                new = getattr(new, "pk", None)
            if old != new:
                changed[name] = [_stored_form(field, old), _stored_form(field, new)]
        return changed


class AccountChange(FieldChange):
    RECORD = Account
    FIELDS = (
        "name", "domain", "owner", "plan", "mrr", "currency",
        "signup_date", "trial_ends_at", "contract_start", "renewal_date", "card_expires_at",
    )

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="changes")

    class Meta:
        # An account's story reads its changes; the reports read a tenant's latest ones.
        indexes = [models.Index(fields=["tenant", "account", "at"]), models.Index(fields=["tenant", "at"])]

    def __str__(self):
        return f"{', '.join(self.fields)} of account {self.account_id} at {self.at:%Y-%m-%d %H:%M}"

    @staticmethod
    def recorded_mrr(position):
        """The MRR before (0) or after (1) a change of MRR, read from its JSON as a decimal, for queries."""
        return Cast(KT(f"fields__mrr__{position}"), models.DecimalField(max_digits=14, decimal_places=2))

    @staticmethod
    def owners_named(changes):
        """`{user id: user}` of the owners before and after `changes`, which keep them by id: one query, or none
        when no owner changed. A user deleted since is missing."""
        ids = {value for change in changes for value in change.fields.get("owner", ()) if value is not None}
        return User.objects.in_bulk(ids) if ids else {}


def _stored_form(field, value):
    """`value` as a change keeps it: an amount with its field's decimal places, whatever the input had."""
    if isinstance(value, Decimal):
        return value.quantize(Decimal(1).scaleb(-field.decimal_places))
    return value


def currency_code(value):
    """`value` as a currency code: three letters (ISO 4217), upper case; a ValidationError otherwise."""
    if not re.fullmatch(r"[A-Za-z]{3}", value or ""):
        raise ValidationError("Must be a three-letter currency code such as USD.", code="invalid")
    return value.upper()


def renewal_after_contract(contract_start, renewal_date):
    """An account renews on or after its contract starts."""
    if contract_start and renewal_date and renewal_date < contract_start:
        raise ValidationError({"renewal_date": "Must not be before the contract start."}, code="invalid")


def ingest_account_key(related_name="+"):
    """The account of a row that ingest writes for every event: a usage event or a daily rollup.

    Such a table has no index of the account alone, one more for each event
    to write. On PostgreSQL the database keeps the reference as the pair
    (tenant, account) to Account's (tenant, id) instead (migration 0009):
    its checks when accounts are deleted read the table's tenant-first
    index, and no row can point at another tenant's account. Deleting an
    account still cascades here, in the ORM as for any foreign key.
    """
    return models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name=related_name, db_index=False, db_constraint=False
    )


class DirtyAccount(TenantModel):
    """An account the pipeline must recompute, marked when ingest or an edit touches it.

    The marks live in this narrow table rather than on the wide, much-indexed
    account row, so setting one rewrites no account index. `dirty_at` is not
    indexed, so marking a marked account again can be a heap-only update. The
    pipeline deletes a mark only if it is not newer than the moment it read it.
    `waiting_since` is when the mark was set, kept while it stays: no change
    still waiting for the account is older.
    """

    account = models.OneToOneField(Account, primary_key=True, on_delete=models.CASCADE, related_name="dirty_mark")
    dirty_at = models.DateTimeField()
    waiting_since = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "account"], name="dirty_account_unique")]

    def __str__(self):
        return f"account {self.account_id} dirty since {self.dirty_at}"


class ContactRole(models.TextChoices):
    ADMINISTRATOR = "administrator", "Administrator"
    USER = "user", "User"
    CHAMPION = "champion", "Champion"
    BILLING = "billing", "Billing"
    EXECUTIVE = "executive", "Executive sponsor"


class ContactQuerySet(TenantQuerySet):
    def champions(self):
        """The contacts who speak for their account inside the customer (the champion role)."""
        return self.filter(role=ContactRole.CHAMPION)


class Contact(TenantModel):
    external_id = models.CharField(max_length=200)
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="contacts")
    email = models.EmailField(blank=True)
    name = models.CharField(max_length=200, blank=True)
    title = models.CharField(max_length=200, blank=True)
    role = models.CharField(max_length=20, choices=ContactRole.choices, default=ContactRole.USER)
    last_seen_at = models.DateTimeField(null=True, blank=True)
    attributes = models.JSONField(default=dict, blank=True)
    unsubscribed = models.BooleanField("unsubscribed from emails", default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    objects = ContactQuerySet.as_manager()

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "external_id"], name="contact_unique_external_id")]
        indexes = [
            models.Index(fields=["tenant", "account"]),
            models.Index(fields=["tenant", "email"]),
            models.Index(fields=["tenant", "updated_at"]),
        ]

    def __str__(self):
        return self.name or self.email or self.external_id


class ContactChange(FieldChange):
    """A contact's addition, a change of its details, or its removal, kept on the account the contact was with
    then, for the account's story; the story outlives the contact."""

    RECORD = Contact
    FIELDS = ("name", "email", "title", "role", "unsubscribed")

    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="changes")
    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="contact_changes")
    # What the contact was called then (its name, else email or external id), for when it is gone.
    contact_name = models.CharField(max_length=254, blank=True)
    # The contact was created; `fields` holds what it was given, each from null.
    added = models.BooleanField(default=False)
    # The contact was deleted; `fields` holds what it had, each going to null.
    removed = models.BooleanField(default=False)

    class Meta:
        indexes = [models.Index(fields=["tenant", "account", "at"]), models.Index(fields=["tenant", "at"])]
        constraints = [
            models.CheckConstraint(
                condition=~(models.Q(added=True) & models.Q(removed=True)), name="contactchange_added_or_removed"
            )
        ]

    def __str__(self):
        what = "addition" if self.added else "removal" if self.removed else ", ".join(self.fields)
        return f"{what} of contact {self.contact_id or self.contact_name} at {self.at:%Y-%m-%d %H:%M}"

    @property
    def contact_called(self):
        """The contact as it is called now, or as it was when it was removed."""
        return str(self.contact) if self.contact_id else self.contact_name

    @classmethod
    def addition(cls, contact):
        """`{field: [None, new]}` of each of the contact's FIELDS: what it was given when it was added."""
        return {name: [None, getattr(contact, name)] for name in cls.FIELDS}

    @classmethod
    def removal(cls, contact):
        """`{field: [old, None]}` of each of the contact's FIELDS: what it had when it was removed."""
        return {name: [getattr(contact, name), None] for name in cls.FIELDS}


class AccountNote(TenantModel):
    """What someone on the team recorded about an account: a call, a meeting, context for the next person.

    Pinned notes come first on the account page, the rest newest first.
    """

    MAX_LENGTH = 10_000

    account = models.ForeignKey(Account, on_delete=models.CASCADE, related_name="notes")
    author = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    body = models.TextField(max_length=MAX_LENGTH)
    pinned = models.BooleanField(default=False)
    # The form's token (or an API client's): a second submit of the same note stores nothing more.
    key = models.CharField(max_length=100, null=True, blank=True)
    # Set by the services rather than auto_now, so imported and demo notes keep when they were written.
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-pinned", "-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "key"], name="accountnote_unique_key")]
        indexes = [models.Index(fields=["tenant", "account", "created_at"])]

    def __str__(self):
        return self.body[:80]

    @property
    def edited(self):
        return self.updated_at > self.created_at


class UsageEvent(TenantModel):
    message_id = models.CharField(max_length=200)
    account = ingest_account_key(related_name="events")
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.SET_NULL, related_name="events")
    event = models.CharField(max_length=200)
    timestamp = models.DateTimeField()
    properties = models.JSONField(default=dict, blank=True)
    received_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["tenant", "message_id"], name="event_unique_message_id")]
        indexes = [models.Index(fields=["tenant", "account", "-timestamp"])]

    def __str__(self):
        return f"{self.event} @ {self.timestamp:%Y-%m-%d %H:%M}"


class DailyRollup(TenantModel):
    """Events per account, contact, day and event name; what metrics read.

    `contact_ref` is the contact's id, or 0 for events without a contact; a
    plain integer keeps the unique key free of NULLs on every database.
    """

    account = ingest_account_key()
    contact_ref = models.BigIntegerField(default=0)
    day = models.DateField()
    event = models.CharField(max_length=200)
    count = models.PositiveIntegerField(default=0)

    class Meta:
        # Ingest writes every index of this table for each event, so the unique key is also the one metrics
        # read a chunk of accounts' rows through. On PostgreSQL its index carries `count` as well (migration
        # 0008): covering the rows lets the reads answer from the index instead of visiting every heap page of
        # the tenant (rows are stored in the order days arrive). SQLite has no covering indexes.
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "account", "day", "event", "contact_ref"], name="rollup_unique_key"
            )
        ]


class DailyPropertyRollup(TenantModel):
    """Sum, count and latest value of each numeric event property per account and day.

    Lets metrics such as "average NPS answer over 90 days" read rollups
    instead of raw events.
    """

    account = ingest_account_key()
    day = models.DateField()
    event = models.CharField(max_length=200)
    prop = models.CharField(max_length=100)
    total = models.FloatField(default=0)
    count = models.PositiveIntegerField(default=0)
    latest_value = models.FloatField(null=True)
    latest_at = models.DateTimeField(null=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["tenant", "account", "day", "event", "prop"], name="prop_rollup_unique_key")
        ]


class DailyValueRollup(TenantModel):
    """Each distinct value of a string event property per account and day, e.g. the features used.

    Kept only for the (event, property) pairs some metric reads (see
    `csplatform.customers.ingest.register_value_properties`), so metrics such
    as "distinct features used in 30 days" read rollups instead of raw events.
    """

    account = ingest_account_key()
    day = models.DateField()
    event = models.CharField(max_length=200)
    prop = models.CharField(max_length=100)
    value = models.CharField(max_length=200)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "account", "day", "event", "prop", "value"], name="value_rollup_unique_key"
            )
        ]


class SavedView(TenantModel):
    """A member's own named portfolio view: its filters, scope and sort, as the page's query string."""

    MAX_PER_MEMBER = 30
    MAX_QUERY_LENGTH = 2000

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    name = models.CharField(max_length=80)
    query = models.CharField(max_length=MAX_QUERY_LENGTH, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["tenant", "user", "name"], name="savedview_unique_name")]

    def __str__(self):
        return self.name

    @staticmethod
    def query_of(params):
        """The query string a view keeps of a portfolio page's `params` (a QueryDict): all but the page number."""
        params = params.copy()
        params.pop("page", None)
        return params.urlencode()
