from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.response import Response

from csplatform.customers.models import Account
from csplatform.tenancy.api.authentication import acting_user
from csplatform.tenancy.api.viewsets import TenantAPIView, TenantModelViewSet
from csplatform.tenancy.models import Scope

from ..defaults import scorecards_apply_defaults
from ..analysis import health_distribution, health_history, health_why, scorecard_backtest, scorecard_preview
from ..models import HealthScore, Scorecard, ScorecardVersion
from ..services import (
    health_override_clear,
    health_override_set,
    health_settings_get,
    health_settings_update,
    scorecard_create,
    scorecard_delete,
    scorecard_update,
    scorecard_version_create,
    scorecard_version_publish,
)
from .serializers import (
    BacktestResultSerializer,
    BacktestSerializer,
    HealthDistributionSerializer,
    HealthScoreSerializer,
    HealthSettingsSerializer,
    HealthSnapshotSerializer,
    HistoryQuerySerializer,
    OverrideSerializer,
    HealthWhySerializer,
    PreviewResultSerializer,
    PreviewSerializer,
    ScorecardSerializer,
    ScorecardVersionSerializer,
    WhyQuerySerializer,
)

VERSION = r"versions/(?P<number>[0-9]+)"


NUMBER_PARAMETER = OpenApiParameter(
    "number", OpenApiTypes.INT, OpenApiParameter.PATH, description="The version number."
)
DAYS_PARAMETER = OpenApiParameter(
    "days", OpenApiTypes.INT, description="How many days of snapshots to replay (1-365, default 90)."
)


def _actor(request):
    return acting_user(request)


class ScorecardViewSet(TenantModelViewSet):
    """Health scorecards: one per stage plus the tenant default (`stage: null`).

    The measures live in versions: `POST .../versions/` saves a draft,
    `POST .../versions/<n>/publish/` makes it score the accounts. Preview and
    backtest a draft before publishing it.
    """

    queryset = Scorecard.objects
    serializer_class = ScorecardSerializer
    pagination_class = None

    def perform_destroy(self, instance):
        scorecard_delete(tenant=self.tenant, scorecard=instance, actor=_actor(self.request))

    def perform_update(self, serializer):
        serializer.instance = scorecard_update(
            tenant=self.tenant, scorecard=serializer.instance, actor=_actor(self.request), **serializer.validated_data
        )

    def create(self, request, *args, **kwargs):
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        scorecard = scorecard_create(tenant=self.tenant, actor=_actor(request), **serializer.validated_data)
        return Response(self.get_serializer(scorecard).data, status=status.HTTP_201_CREATED)

    def _version(self, scorecard, number):
        version = ScorecardVersion.objects.for_tenant(self.tenant).filter(scorecard=scorecard, number=number).first()
        if version is None:
            raise NotFound(f"Scorecard {scorecard.pk} has no version {number}.")
        return version

    def _version_data(self, version):
        return ScorecardVersionSerializer(version, context=self.get_serializer_context()).data

    @extend_schema(request=None, responses={201: ScorecardSerializer(many=True)})
    @action(detail=False, methods=["post"], url_path="apply-defaults")
    def apply_defaults(self, request):
        """Create the default scorecards for stages without one, and the tenant default if missing."""
        created = scorecards_apply_defaults(tenant=self.tenant, actor=_actor(request))
        return Response(self.get_serializer(created, many=True).data, status=status.HTTP_201_CREATED)

    @extend_schema(
        methods=["GET"], operation_id="v1_health_scorecards_versions_list",
        responses=ScorecardVersionSerializer(many=True), description="The scorecard's versions, newest first.",
    )
    @extend_schema(
        methods=["POST"], operation_id="v1_health_scorecards_versions_create",
        request=ScorecardVersionSerializer, responses={201: ScorecardVersionSerializer},
        description="Save a draft version of the scorecard's measures.",
    )
    @action(detail=True, methods=["get", "post"], serializer_class=ScorecardVersionSerializer)
    def versions(self, request, pk=None):
        scorecard = self.get_object()
        if request.method == "GET":
            versions = ScorecardVersion.objects.for_tenant(self.tenant).filter(scorecard=scorecard)
            versions = versions.select_related("scorecard", "created_by").order_by("-number")
            return Response([self._version_data(version) for version in versions])
        serializer = ScorecardVersionSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        version = scorecard_version_create(
            tenant=self.tenant, scorecard=scorecard, actor=_actor(request), **serializer.validated_data
        )
        return Response(self._version_data(version), status=status.HTTP_201_CREATED)

    @extend_schema(
        operation_id="v1_health_scorecards_versions_retrieve", parameters=[NUMBER_PARAMETER],
        responses=ScorecardVersionSerializer,
    )
    @action(detail=True, methods=["get"], url_path=VERSION, serializer_class=ScorecardVersionSerializer)
    def version(self, request, pk=None, number=None):
        return Response(self._version_data(self._version(self.get_object(), number)))

    @extend_schema(request=None, parameters=[NUMBER_PARAMETER], responses=ScorecardVersionSerializer)
    @action(detail=True, methods=["post"], url_path=f"{VERSION}/publish", serializer_class=ScorecardVersionSerializer)
    def publish(self, request, pk=None, number=None):
        """Score the scorecard's accounts with this version from now on (they are rescored shortly)."""
        version = self._version(self.get_object(), number)
        scorecard_version_publish(tenant=self.tenant, version=version, actor=_actor(request))
        version.refresh_from_db()
        return Response(self._version_data(version))

    @extend_schema(request=PreviewSerializer, responses=PreviewResultSerializer)
    @action(detail=True, methods=["post"], serializer_class=PreviewSerializer, required_scope=Scope.READ)
    def preview(self, request, pk=None):
        """Scores and colours of the scorecard's accounts now and with the draft `measures` in the body."""
        serializer = PreviewSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        return Response(
            scorecard_preview(tenant=self.tenant, scorecard=self.get_object(), measures=serializer.validated_data["measures"])
        )

    @extend_schema(
        parameters=[NUMBER_PARAMETER], responses=PreviewResultSerializer,
        description="Scores and colours of the scorecard's accounts now and with this version's measures.",
    )
    @action(detail=True, methods=["get"], url_path=f"{VERSION}/preview", serializer_class=PreviewSerializer)
    def version_preview(self, request, pk=None, number=None):
        scorecard = self.get_object()
        version = self._version(scorecard, number)
        return Response(scorecard_preview(tenant=self.tenant, scorecard=scorecard, measures=version.measures))

    @extend_schema(request=BacktestSerializer, responses=BacktestResultSerializer)
    @action(detail=True, methods=["post"], serializer_class=BacktestSerializer, required_scope=Scope.READ)
    def backtest(self, request, pk=None):
        """Replay the draft `measures` in the body (else the published version) over the stored snapshots."""
        serializer = BacktestSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        scorecard = self.get_object()
        measures = serializer.validated_data.get("measures")
        if measures is None:
            if scorecard.published_version is None:
                raise serializers.ValidationError({"measures": "The scorecard has no published version; send measures."})
            measures = scorecard.published_version.measures
        return Response(
            scorecard_backtest(tenant=self.tenant, measures=measures, days=serializer.validated_data["days"])
        )

    @extend_schema(
        parameters=[NUMBER_PARAMETER, DAYS_PARAMETER], responses=BacktestResultSerializer,
        description="Replay this version's measures over the stored snapshots of the last `days` days.",
    )
    @action(detail=True, methods=["get"], url_path=f"{VERSION}/backtest", serializer_class=BacktestSerializer)
    def version_backtest(self, request, pk=None, number=None):
        version = self._version(self.get_object(), number)
        query = BacktestSerializer(data=request.query_params, context=self.get_serializer_context())
        query.is_valid(raise_exception=True)
        return Response(scorecard_backtest(tenant=self.tenant, measures=version.measures, days=query.validated_data["days"]))


class AccountHealthBase(TenantAPIView):
    def account(self, pk):
        return get_object_or_404(Account.objects.for_tenant(self.tenant), pk=pk)


class AccountHealthView(AccountHealthBase):
    """An account's current health: score, colour, breakdown by measure, deltas and any override."""

    @extend_schema(responses=HealthScoreSerializer)
    def get(self, request, pk):
        account = self.account(pk)
        health = (
            HealthScore.objects.for_tenant(self.tenant)
            .select_related("scorecard_version__scorecard", "override_by")
            .filter(account=account)
            .first()
        )
        if health is None:
            raise NotFound("This account has not been scored yet.")
        return Response(HealthScoreSerializer(health).data)


class AccountHealthHistoryView(AccountHealthBase):
    """Daily snapshots of the last `days` days (default 90), oldest first."""

    @extend_schema(
        parameters=[
            OpenApiParameter("days", OpenApiTypes.INT, description="How many days back (1-730, default 90)."),
        ],
        responses=HealthSnapshotSerializer(many=True),
    )
    def get(self, request, pk):
        account = self.account(pk)
        query = HistoryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        snapshots = health_history(tenant=self.tenant, account=account, days=query.validated_data["days"])
        return Response(HealthSnapshotSerializer(snapshots, many=True).data)


class AccountHealthWhyView(AccountHealthBase):
    """Why the score changed between `from` and `to` (default: 7 days ago and today), measure by measure."""

    @extend_schema(
        parameters=[
            OpenApiParameter("from", OpenApiTypes.DATE, description="Compare from this day (default: 7 days before `to`)."),
            OpenApiParameter("to", OpenApiTypes.DATE, description="Compare up to this day (default: today)."),
        ],
        responses=HealthWhySerializer,
    )
    def get(self, request, pk):
        account = self.account(pk)
        query = WhyQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        data = query.validated_data
        return Response(health_why(tenant=self.tenant, account=account, from_day=data.get("from"), to_day=data.get("to")))


class AccountHealthOverrideView(AccountHealthBase):
    """Set (POST) or remove (DELETE) a manual score or colour, with a reason and an optional expiry."""

    @extend_schema(request=OverrideSerializer, responses=HealthScoreSerializer)
    def post(self, request, pk):
        account = self.account(pk)
        serializer = OverrideSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        health = health_override_set(
            tenant=self.tenant, account=account, actor=_actor(request), reason=data["reason"],
            score=data.get("score"), colour=data.get("colour", ""), expires_at=data.get("expires_at"),
        )
        return Response(HealthScoreSerializer(health).data)

    @extend_schema(responses={204: OpenApiResponse(description="The override was removed.")})
    def delete(self, request, pk):
        account = self.account(pk)
        if not health_override_clear(tenant=self.tenant, account=account, actor=_actor(request)):
            raise NotFound("This account's health has no override.")
        return Response(status=status.HTTP_204_NO_CONTENT)


class HealthDistributionView(TenantAPIView):
    """Accounts per colour: the current customers overall, every account per stage, and each owner's current
    customers with their MRR and renewals in the next 90 days."""

    @extend_schema(responses=HealthDistributionSerializer)
    def get(self, request):
        return Response(HealthDistributionSerializer(health_distribution(tenant=self.tenant)).data)


class HealthSettingsView(TenantAPIView):
    """The colour bands: below `red_below` is red, from `green_from` up green."""

    @extend_schema(responses=HealthSettingsSerializer)
    def get(self, request):
        settings = health_settings_get(self.tenant)
        return Response(HealthSettingsSerializer(settings).data)

    @extend_schema(request=HealthSettingsSerializer, responses=HealthSettingsSerializer)
    def put(self, request):
        serializer = HealthSettingsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        settings = health_settings_update(tenant=self.tenant, actor=_actor(request), **serializer.validated_data)
        return Response(HealthSettingsSerializer(settings).data)
