"""The endpoints that reach across apps: how fresh the key's tenant's results are, an account's activity, and the
notes, which tell the members they name."""

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
from csplatform.customers.models import Account
from csplatform.models import PassStatus
from csplatform.pipeline import pipeline_freshness
from csplatform.tenancy.api.fields import TenantMemberField
from csplatform.tenancy.api.viewsets import TenantAPIView

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
    playbook runs and segments; another tenant's account is 404."""

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
