from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.decorators import action
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response

from csplatform.customers.models import Account
from csplatform.rules import CriteriaError, compile_criteria
from csplatform.tenancy.api.authentication import acting_user
from csplatform.tenancy.api.pagination import NewestFirstCursorPagination
from csplatform.tenancy.api.viewsets import TenantAPIView, TenantModelViewSet, TenantReadOnlyViewSet, TenantScopedMixin
from csplatform.tenancy.models import Scope

from ..models import Stage, StageTransition
from ..selectors import lifecycle_kpis
from ..services import account_move_stage, account_renew, stage_delete, stages_apply_template, stages_reorder
from ..templates import TEMPLATES
from .filtersets import StageTransitionFilterSet
from .serializers import (
    ApplyTemplateSerializer,
    CriteriaPreviewSerializer,
    CriteriaValidateSerializer,
    MoveStageSerializer,
    RenewSerializer,
    ReorderSerializer,
    StageSerializer,
    StageTransitionSerializer,
    raise_as_api_error,
)

PREVIEW_SAMPLE_SIZE = 10


class StageViewSet(TenantModelViewSet):
    """The tenant's lifecycle stages, addressed by key. Deleting a stage that holds accounts needs `?move_to=<key>`."""

    queryset = Stage.objects
    serializer_class = StageSerializer
    lookup_field = "key"
    pagination_class = None

    def perform_destroy(self, instance):
        move_to = None
        move_to_key = self.request.query_params.get("move_to")
        if move_to_key:
            move_to = Stage.objects.for_tenant(self.tenant).filter(key=move_to_key).first()
            if move_to is None:
                raise serializers.ValidationError({"move_to": f"Unknown stage {move_to_key!r}."})
        try:
            stage_delete(tenant=self.tenant, stage=instance, actor=acting_user(self.request), move_to=move_to)
        except DjangoValidationError as exc:
            raise_as_api_error(exc)

    @extend_schema(request=ReorderSerializer, responses=StageSerializer(many=True))
    @action(detail=False, methods=["post"])
    def reorder(self, request):
        data = {"keys": request.data} if isinstance(request.data, list) else request.data
        serializer = ReorderSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        try:
            stages = stages_reorder(
                tenant=self.tenant, keys=serializer.validated_data["keys"], actor=acting_user(request)
            )
        except DjangoValidationError as exc:
            raise_as_api_error(exc)
        return Response(StageSerializer(stages, many=True, context=self.get_serializer_context()).data)

    @extend_schema(request=ApplyTemplateSerializer, responses=StageSerializer(many=True))
    @action(detail=False, methods=["post"], url_path="apply-template")
    def apply_template(self, request):
        serializer = ApplyTemplateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            stages = stages_apply_template(
                tenant=self.tenant,
                template_key=serializer.validated_data["template"],
                mapping=serializer.validated_data.get("mapping"),
                actor=acting_user(request),
            )
        except DjangoValidationError as exc:
            raise_as_api_error(exc)
        return Response(StageSerializer(stages, many=True, context=self.get_serializer_context()).data)


class StageTemplateListView(TenantAPIView):
    """The stage sets a tenant can start from (`POST stages/apply-template`)."""

    @extend_schema(responses={200: {"type": "array", "items": {"type": "object"}}})
    def get(self, request):
        return Response([template.as_dict() for template in TEMPLATES])


class TransitionCursorPagination(NewestFirstCursorPagination):
    ordering = ("-at", "-id")


class StageTransitionViewSet(TenantReadOnlyViewSet):
    """Every stage move, newest first: filter by `account` (id), `stage` (key entered), `kind`, `since`."""

    queryset = StageTransition.objects
    serializer_class = StageTransitionSerializer
    filterset_class = StageTransitionFilterSet
    pagination_class = TransitionCursorPagination


class AccountStageActionView(TenantScopedMixin, GenericAPIView):
    """Base of the account actions: the account is looked up among the key tenant's accounts only."""

    queryset = Account.objects

    def respond(self, transition):
        return Response(StageTransitionSerializer(transition).data, status=status.HTTP_201_CREATED)


class AccountMoveStageView(AccountStageActionView):
    """Move an account to a stage by hand, in any direction; the reason is required."""

    serializer_class = MoveStageSerializer

    def post(self, request, pk):
        account = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            transition = account_move_stage(
                tenant=self.tenant,
                account=account,
                to_stage=serializer.validated_data["stage"],
                actor=acting_user(request),
                reason=serializer.validated_data["reason"],
            )
        except DjangoValidationError as exc:
            raise_as_api_error(exc)
        return self.respond(transition)


class AccountRenewView(AccountStageActionView):
    """The account renewed: from its renewal stage it re-enters the cycle at the stage the renewal stage names."""

    serializer_class = RenewSerializer

    def post(self, request, pk):
        account = self.get_object()
        serializer = self.get_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            transition = account_renew(
                tenant=self.tenant,
                account=account,
                actor=acting_user(request),
                reason=serializer.validated_data["reason"],
            )
        except DjangoValidationError as exc:
            raise_as_api_error(exc)
        return self.respond(transition)


def criteria_error_dict(exc):
    return {"message": str(exc), "line": exc.line, "column": exc.column, "field": exc.field}


class CriteriaValidateView(TenantAPIView):
    """Check criteria text as an editor types: `{valid, error}`, the error pointing at line and column."""

    required_scope = Scope.READ

    @extend_schema(request=CriteriaValidateSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        serializer = CriteriaValidateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            criteria = compile_criteria(
                serializer.validated_data["text"], subject=serializer.validated_data["subject"], tenant=self.tenant
            )
        except CriteriaError as exc:
            return Response({"valid": False, "error": criteria_error_dict(exc)})
        return Response({"valid": True, "error": None, "text": criteria.text})


class CriteriaPreviewView(TenantAPIView):
    """How many accounts the criteria match now, with a sample and why each matched."""

    required_scope = Scope.READ

    @extend_schema(request=CriteriaPreviewSerializer, responses=OpenApiTypes.OBJECT)
    def post(self, request):
        serializer = CriteriaPreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            criteria = compile_criteria(serializer.validated_data["text"], subject="account", tenant=self.tenant)
        except CriteriaError as exc:
            raise serializers.ValidationError({"text": str(exc)}) from exc
        matching = criteria.filter(Account.objects.for_tenant(self.tenant))
        sample = criteria.with_related(matching).order_by("name", "pk")[:PREVIEW_SAMPLE_SIZE]
        return Response(
            {
                "count": matching.count(),
                "sample": [
                    {"id": account.pk, "name": account.name, "explanation": criteria.explain(account).as_dict()}
                    for account in sample
                ],
            }
        )


class LifecycleKpiView(TenantAPIView):
    """Accounts per stage, median days in each stage, stage-to-stage conversion, time to onboard by cohort, and
    the customers who left (entered a terminal stage such as Churned) in each of the last 12 months: how many,
    the churn rate over those in the lifecycle at the month's start, the MRR they had, and why they left."""

    @extend_schema(responses=OpenApiTypes.OBJECT)
    def get(self, request):
        return Response(
            lifecycle_kpis(tenant=self.tenant, onboarding_stage_key=request.query_params.get("onboarding_stage"))
        )
