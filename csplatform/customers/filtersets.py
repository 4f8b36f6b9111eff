import datetime as dt

import django_filters
from django import forms
from django.db.models import F, Q

from csplatform.tenancy.models import User

from .models import Account, Contact

UNSCORED = "unscored"
UNASSIGNED = "none"
# Whether the account is still a customer: "left" means it is in a terminal stage, such as Churned.
CUSTOMER_STATES = {"current": "Current customers", "left": "Customers who left"}
RENEWAL_WINDOWS = {
    "overdue": "Renewal date passed",
    "30": "Renews within 30 days",
    "60": "Renews within 60 days",
    "90": "Renews within 90 days",
}


class NullsLastOrderingFilter(django_filters.OrderingFilter):
    """Column sorting that puts empty values last in both directions, on every database.

    The name and id come last so that pages of equal values stay stable.
    """

    def filter(self, qs, value):
        if not value:
            return qs
        expressions = []
        for param in value:
            descending = param.startswith("-")
            field = F(self.param_map[param.lstrip("-")])
            expressions.append(field.desc(nulls_last=True) if descending else field.asc(nulls_last=True))
        return qs.order_by(*expressions, "name", "id")


class AccountFilterSet(django_filters.FilterSet):
    """The portfolio's filters; its query-string names are the page's URL contract.

    The page annotates `last_activity` and `days_in_stage`, which two sort keys read.
    Needs `tenant` (the owner choices are the tenant's own members),
    `user` (for "my accounts") and `today` (the tenant's local date, for
    renewal windows).
    """

    q = django_filters.CharFilter(label="Search", method="filter_search")
    scope = django_filters.ChoiceFilter(
        label="Show",
        choices=[("all", "All accounts"), ("mine", "My accounts")],
        empty_label=None,
        method="filter_scope",
    )
    plan = django_filters.ChoiceFilter(label="Plan", empty_label="Any plan")
    owner = django_filters.ChoiceFilter(label="Owner", empty_label="Anyone", method="filter_owner")
    stage = django_filters.ChoiceFilter(label="Stage", empty_label="Any stage", field_name="lifecycle__stage__key")
    health = django_filters.ChoiceFilter(label="Health", empty_label="Any health", method="filter_health")
    customers = django_filters.ChoiceFilter(
        label="Customers",
        choices=list(CUSTOMER_STATES.items()),
        empty_label="Current and former",
        method="filter_customers",
    )
    renewal = django_filters.ChoiceFilter(
        label="Renewal",
        choices=list(RENEWAL_WINDOWS.items()),
        empty_label="Any time",
        method="filter_renewal",
    )
    sort = NullsLastOrderingFilter(
        label="Sort by",
        fields=(
            ("name", "name"),
            ("lifecycle__stage__position", "stage"),
            ("days_in_stage", "days"),
            ("health__score", "health"),
            ("health__delta_30d", "delta"),
            ("plan", "plan"),
            ("mrr", "mrr"),
            ("owner__name", "owner"),
            ("renewal_date", "renewal"),
            ("trial_ends_at", "trial_end"),
            ("last_activity", "activity"),
        ),
        widget=forms.HiddenInput,
    )

    class Meta:
        model = Account
        fields = ["q", "scope", "customers", "stage", "health", "plan", "owner", "renewal"]

    def __init__(self, data=None, queryset=None, *, tenant, user, today, stages=(), colours=(), plans=(), **kwargs):
        """`stages` and `colours` are (value, label) choices from the lifecycle and health apps, which sit above this one;
        `plans` are the tenant's plans in use, which the page counts with its other whole-portfolio figures."""
        super().__init__(data, queryset, **kwargs)
        self.filters["stage"].extra["choices"] = list(stages)
        self.filters["health"].extra["choices"] = [*colours, (UNSCORED, "Not scored")]
        self.tenant = tenant
        self.user = user
        self.today = today
        self.filters["plan"].extra["choices"] = [(plan, plan.title()) for plan in plans]
        # Plain choices rather than a model field: one query serves both validation and the select,
        # and the page's owner assignment reads the same list.
        self.members = list(User.objects.members_of(tenant))
        self.filters["owner"].extra["choices"] = [
            (UNASSIGNED, "Unassigned"),
            *((str(user.pk), str(user)) for user in self.members),
        ]

    def filter_search(self, queryset, name, value):
        """The accounts whose name, domain or external id holds the text, or with a contact whose name or email
        does: a CSM looks a customer up by the person who wrote to them."""
        value = value.strip()
        if not value:
            return queryset
        people = Contact.objects.for_tenant(self.tenant).filter(Q(name__icontains=value) | Q(email__icontains=value))
        return queryset.filter(
            Q(name__icontains=value)
            | Q(domain__icontains=value)
            | Q(external_id__icontains=value)
            | Q(pk__in=people.values("account_id"))
        )

    def filter_scope(self, queryset, name, value):
        if value != "mine":
            return queryset
        # An API key made from the command line acts for no one, so it has no accounts of its own.
        return queryset.filter(owner=self.user) if self.user is not None else queryset.none()

    def filter_owner(self, queryset, name, value):
        return queryset.filter(owner__isnull=True) if value == UNASSIGNED else queryset.filter(owner_id=value)

    def filter_customers(self, queryset, name, value):
        return queryset.still_customers() if value == "current" else queryset.departed()

    def filter_health(self, queryset, name, value):
        # As the page's colour counts: a customer who left keeps its last score but has no health to act on.
        queryset = queryset.still_customers()
        if value == UNSCORED:
            return queryset.filter(Q(health__isnull=True) | Q(health__colour=""))
        return queryset.filter(health__colour=value)

    def filter_renewal(self, queryset, name, value):
        # A customer who left renews nothing, whatever date its record still holds.
        queryset = queryset.still_customers()
        if value == "overdue":
            return queryset.filter(renewal_date__lt=self.today)
        days = int(value)
        return queryset.filter(renewal_date__gte=self.today, renewal_date__lte=self.today + dt.timedelta(days=days))
