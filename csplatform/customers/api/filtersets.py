import django_filters
from django.db.models import Q

from csplatform.tenancy.api.filters import BooleanFilter, DateTimeFilter, EmailFilter

from ..models import Account, AccountChange, AccountNote, Contact, ContactChange, ContactRole


class StableOrderingFilter(django_filters.OrderingFilter):
    """Client ordering with the id as the last key, so rows with equal values do not move between pages."""

    def filter(self, qs, value):
        qs = super().filter(qs, value)
        return qs.order_by(*qs.query.order_by, "id") if value else qs


def search(queryset, value, fields):
    value = value.strip()
    if not value:
        return queryset
    condition = Q()
    for field in fields:
        condition |= Q(**{f"{field}__icontains": value})
    return queryset.filter(condition)


class AccountFilterSet(django_filters.FilterSet):
    owner = EmailFilter(field_name="owner__email", help_text="Owner's email.")
    plan = django_filters.CharFilter()
    updated_since = DateTimeFilter(
        field_name="updated_at", lookup_expr="gte", help_text="Changed at or after this ISO 8601 time."
    )
    renewal_before = django_filters.DateFilter(
        field_name="renewal_date", lookup_expr="lte", help_text="Renews on or before this date."
    )
    renewal_after = django_filters.DateFilter(
        field_name="renewal_date", lookup_expr="gte", help_text="Renews on or after this date."
    )
    q = django_filters.CharFilter(method="filter_q", help_text="Text in the name, domain or external id.")
    ordering = StableOrderingFilter(
        fields=["name", "external_id", "plan", "mrr", "renewal_date", "created_at", "updated_at"]
    )

    class Meta:
        model = Account
        fields = []

    def filter_q(self, queryset, name, value):
        return search(queryset, value, ["name", "domain", "external_id"])

    def filter_queryset(self, queryset):
        # Every listed account shows its owner's email; one join instead of
        # a query per row. (The tenant-scoped base takes the bare manager.)
        return super().filter_queryset(queryset).select_related("owner")


class ContactFilterSet(django_filters.FilterSet):
    account = django_filters.CharFilter(field_name="account__external_id", help_text="The account's external id.")
    role = django_filters.ChoiceFilter(choices=ContactRole.choices)
    email = django_filters.CharFilter(lookup_expr="iexact")
    updated_since = DateTimeFilter(
        field_name="updated_at", lookup_expr="gte", help_text="Changed at or after this ISO 8601 time."
    )
    q = django_filters.CharFilter(method="filter_q", help_text="Text in the name, email or external id.")
    ordering = StableOrderingFilter(fields=["name", "email", "external_id", "created_at", "updated_at"])

    class Meta:
        model = Contact
        fields = []

    def filter_q(self, queryset, name, value):
        return search(queryset, value, ["name", "email", "external_id"])

    def filter_queryset(self, queryset):
        # Each contact shows its account's external id.
        return super().filter_queryset(queryset).select_related("account")


class AccountNoteFilterSet(django_filters.FilterSet):
    account = django_filters.CharFilter(field_name="account__external_id", help_text="The account's external id.")
    author = EmailFilter(field_name="author__email", help_text="Author's email.")
    pinned = BooleanFilter()
    created_since = DateTimeFilter(
        field_name="created_at", lookup_expr="gte", help_text="Written at or after this ISO 8601 time."
    )
    updated_since = DateTimeFilter(
        field_name="updated_at", lookup_expr="gte", help_text="Changed at or after this ISO 8601 time."
    )
    q = django_filters.CharFilter(method="filter_q", help_text="Text in the note.")
    ordering = StableOrderingFilter(fields=["created_at", "updated_at"])

    class Meta:
        model = AccountNote
        fields = []

    def filter_q(self, queryset, name, value):
        return search(queryset, value, ["body"])

    def filter_queryset(self, queryset):
        # Each note shows its account's external id and its author's email.
        return super().filter_queryset(queryset).select_related("account", "author")


def changed_field_filter(model):
    return django_filters.ChoiceFilter(
        choices=[(name, name) for name in model.FIELDS], method="filter_field",
        help_text="Only the changes of this field.",
    )


class FieldChangeFilterSet(django_filters.FilterSet):
    """What the feeds of changes share: `since` and, declared by each with its model's fields, `field`."""

    account = django_filters.CharFilter(field_name="account__external_id", help_text="The account's external id.")
    since = DateTimeFilter(field_name="at", lookup_expr="gte", help_text="Made at or after this ISO 8601 time.")

    def filter_field(self, queryset, name, value):
        return queryset.filter(fields__has_key=value)


class AccountChangeFilterSet(FieldChangeFilterSet):
    field = changed_field_filter(AccountChange)

    class Meta:
        model = AccountChange
        fields = []

    def filter_queryset(self, queryset):
        # Each change names its account's external id and its author's email.
        return super().filter_queryset(queryset).select_related("account", "actor")


class ContactChangeFilterSet(FieldChangeFilterSet):
    contact = django_filters.CharFilter(
        field_name="contact__external_id", help_text="The contact's external id (a removed contact's changes are "
        "found by their account)."
    )
    added = BooleanFilter(help_text="Only additions (true), or all but additions (false).")
    removed = BooleanFilter(help_text="Only removals (true), or all but removals (false).")
    field = changed_field_filter(ContactChange)

    class Meta:
        model = ContactChange
        fields = []

    def filter_queryset(self, queryset):
        # Each change names its contact's and account's external ids and its author's email.
        return super().filter_queryset(queryset).select_related("contact", "account", "actor")
