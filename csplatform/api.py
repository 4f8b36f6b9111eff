"""The endpoints that reach across apps: how fresh the key's tenant's results are, the portfolio, an account's
activity, and the notes, which tell the members they name."""

from django.db import transaction
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.utils.urls import replace_query_param

from alerts.notifications import note_tell
from csplatform.activity import DETAIL_CHARS, KINDS, Cursor, account_activity
from csplatform.customers.api import serializers as customer_serializers
from csplatform.customers.api import views as customer_views
from csplatform.customers.filtersets import CUSTOMER_STATES, RENEWAL_WINDOWS, UNASSIGNED, UNSCORED, AccountFilterSet
from csplatform.customers.models import Account
from csplatform.dashboard import portfolio_listing
from csplatform.models import PassStatus
from csplatform.pipeline import pipeline_freshness
from csplatform.tenancy.api.authentication import acting_user
from csplatform.tenancy.api.fields import TenantMemberField
from csplatform.tenancy.api.pagination import StandardPagination
from csplatform.tenancy.api.viewsets import TenantAPIView
from health.exports import portfolio_rows
from health.models import Colour

ACTIVITY_PAGE_SIZE = 50
ACTIVITY_MAX_PAGE_SIZE = 200


class PassSerializer(serializers.Serializer):
    opened_at = serializers.DateTimeField()
    ended_at = serializers.DateTimeField(allow_null=True, help_text="Null while the pass runs.")
    seconds = serializers.FloatField(allow_null=True, help_text="How long it took; null while it runs.")
    accounts = serializers.IntegerField(help_text="Accounts recomputed (so far, while it runs).")
    moved = serializers.IntegerField(help_text="Accounts that changed stage.")
    chunks_done = serializers.IntegerField()
    chunks_taken = serializers.IntegerField()
    status = serializers.ChoiceField(choices=PassStatus.choices)


class FreshnessSerializer(serializers.Serializer):
    checked_at = serializers.DateTimeField()
    waiting_accounts = serializers.IntegerField(help_text="Accounts changed since they were last recomputed.")
    current_as_of = serializers.DateTimeField(
        help_text="Every change committed before this moment is in the metrics, health, stages, segments and alerts."
    )
    behind_seconds = serializers.FloatField(
        help_text="`checked_at` minus `current_as_of`: how old the oldest change still waiting may be."
    )
    running = PassSerializer(allow_null=True, help_text="The pass in progress, if any.")
    recent_passes = PassSerializer(many=True, help_text="The latest ended passes, newest first.")


class PipelineFreshnessView(TenantAPIView):
    """How far the tenant's computed results are behind its data, and the pipeline's latest passes."""

    @extend_schema(responses=FreshnessSerializer)
    def get(self, request):
        return Response(FreshnessSerializer(pipeline_freshness(tenant=self.tenant)).data)


class PortfolioAccountSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="pk")
    external_id = serializers.CharField()
    name = serializers.CharField()
    domain = serializers.CharField()
    plan = serializers.CharField()
    stage = serializers.CharField(
        source="lifecycle__stage__key", allow_null=True, help_text="The current stage's key; null until placed."
    )
    stage_name = serializers.CharField(source="lifecycle__stage__name", allow_null=True)
    days_in_stage = serializers.IntegerField(allow_null=True)
    health_colour = serializers.CharField(
        source="health__colour", allow_null=True, help_text="green, yellow or red; empty or null when not scored."
    )
    health_score = serializers.FloatField(source="health__score", allow_null=True, help_text="0 to 100.")
    health_delta_30d = serializers.FloatField(
        source="health__delta_30d", allow_null=True, help_text="Points gained (or lost) in 30 days."
    )
    mrr = serializers.DecimalField(max_digits=14, decimal_places=2)
    currency = serializers.CharField()
    renewal_date = serializers.DateField(allow_null=True)
    trial_ends_at = serializers.DateTimeField(allow_null=True)
    owner = serializers.EmailField(source="owner__email", allow_null=True, help_text="The owner's email.")
    owner_name = serializers.CharField(source="owner__name", allow_null=True)
    last_activity_at = serializers.DateTimeField(
        source="last_activity", allow_null=True, help_text="The latest usage event's time."
    )


class PortfolioPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = PortfolioAccountSerializer(many=True)


PORTFOLIO_SORTS = list(AccountFilterSet.base_filters["sort"].param_map)


class PortfolioView(TenantAPIView):
    """The portfolio as the dashboard lists it: each account with its stage, days in stage, health, MRR, renewal,
    owner and last activity. The filters and sort keys are the portfolio page's, so a saved view's query string
    reads the same accounts here."""

    @extend_schema(
        parameters=[
            OpenApiParameter("q", str, description="Text in the name, domain or external id, or in the name or email "
                                                   "of one of its contacts."),
            OpenApiParameter("customers", str, enum=list(CUSTOMER_STATES), description="`left`: the accounts in a "
                             "terminal stage, such as Churned; `current`: the others."),
            OpenApiParameter("stage", str, description="A stage's key."),
            OpenApiParameter("health", str, enum=[*Colour.values, UNSCORED]),
            OpenApiParameter("plan", str, description="A plan in use."),
            OpenApiParameter("owner", str, description=f"A member's id, or `{UNASSIGNED}` for unassigned accounts."),
            OpenApiParameter("renewal", str, enum=list(RENEWAL_WINDOWS)),
            OpenApiParameter("segment", str, description="A segment's key: the accounts in it (or with a contact in "
                                                         "it, for a contact segment)."),
            OpenApiParameter("scope", str, enum=["all", "mine"], description="`mine`: the key creator's accounts."),
            OpenApiParameter("sort", str, enum=[*PORTFOLIO_SORTS, *(f"-{key}" for key in PORTFOLIO_SORTS)],
                             description="By name unless given; `-` for high to low; empty values last."),
            OpenApiParameter("page", int),
            OpenApiParameter("page_size", int, description=f"1 to {StandardPagination.max_page_size}."),
        ],
        responses=PortfolioPageSerializer,
    )
    def get(self, request):
        _, _, accounts, filterset = portfolio_listing(self.tenant, request.query_params, acting_user(request))
        if not filterset.is_valid():
            raise serializers.ValidationError(filterset.errors)
        paginator = StandardPagination()
        # The page's ids first, then its rows: the joins and the last activity are read for this page only.
        ids = paginator.paginate_queryset(filterset.qs.values_list("pk", flat=True), request, view=self)
        rows = portfolio_rows(accounts, ids)
        return paginator.get_paginated_response(PortfolioAccountSerializer(rows, many=True).data)


class ActivityQuerySerializer(serializers.Serializer):
    kind = serializers.ListField(
        child=serializers.ChoiceField(choices=list(KINDS)), required=False, help_text="Only these kinds; repeat it."
    )
    before = serializers.CharField(required=False, help_text="The `next` link's cursor: the entries after it.")
    page_size = serializers.IntegerField(required=False, min_value=1, max_value=ACTIVITY_MAX_PAGE_SIZE)

    def validate_before(self, text):
        try:
            return Cursor.parse(text)
        except ValueError as exc:
            raise serializers.ValidationError(str(exc)) from None


class ActivityEntrySerializer(serializers.Serializer):
    at = serializers.DateTimeField()
    kind = serializers.ChoiceField(choices=list(KINDS.items()))
    text = serializers.CharField(help_text="What happened, in a sentence.")
    detail = serializers.CharField(
        help_text=f"A reason, a note's body, an email's subject, clipped to {DETAIL_CHARS} characters; may be empty."
    )
    by = serializers.CharField(help_text="Who did it; empty when the platform did.")
    cursor = serializers.CharField(help_text="Pass as `before` to read the entries after this one.")


class ActivityPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True, help_text="The next, older page; null on the last.")
    results = ActivityEntrySerializer(many=True)


class AccountActivityView(TenantAPIView):
    """The account's activity, newest first: stage moves, health colour changes, alerts, notes, emails, tasks,
    playbook runs, segments, and who changed the account's owner or details; another tenant's account is 404."""

    @extend_schema(
        parameters=[
            OpenApiParameter("kind", str, many=True, enum=list(KINDS), description="Only these kinds."),
            OpenApiParameter("before", str, description="The `next` link's cursor."),
            OpenApiParameter(
                "page_size", int, description=f"1 to {ACTIVITY_MAX_PAGE_SIZE}; {ACTIVITY_PAGE_SIZE} by default."
            ),
        ],
        responses=ActivityPageSerializer,
    )
    def get(self, request, account_id):
        account = get_object_or_404(Account.objects.for_tenant(self.tenant), pk=account_id)
        query = ActivityQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        entries, more = account_activity(
            tenant=self.tenant, account=account, kinds=query.validated_data.get("kind", ()),
            cursor=query.validated_data.get("before"), limit=query.validated_data.get("page_size", ACTIVITY_PAGE_SIZE),
        )
        after = replace_query_param(request.build_absolute_uri(), "before", entries[-1].cursor) if more else None
        return Response(ActivityPageSerializer({"next": after, "results": entries}).data)


class AccountNoteSerializer(customer_serializers.AccountNoteSerializer):
    tell = TenantMemberField(
        many=True,
        required=False,
        write_only=True,
        help_text="Optional, on create: the emails of members to tell of the note in the app (their notifications).",
    )

    class Meta(customer_serializers.AccountNoteSerializer.Meta):
        fields = [*customer_serializers.AccountNoteSerializer.Meta.fields, "tell"]

    def validate(self, attrs):
        if self.instance is not None and "tell" in attrs:
            raise serializers.ValidationError({"tell": "Members are told of a note when it is written."})
        return super().validate(attrs)

    def create(self, validated_data):
        told = validated_data.pop("tell", [])
        with transaction.atomic():
            note = super().create(validated_data)
            note_tell(tenant=self.context["tenant"], note=note, users=told)
        return note


class AccountNoteViewSet(customer_views.AccountNoteViewSet):
    """Notes on accounts, pinned first, then newest first; notes sent here are written by the key's creator, and a
    new note tells the members named in `tell` in the app."""

    serializer_class = AccountNoteSerializer
