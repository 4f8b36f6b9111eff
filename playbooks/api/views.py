from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from csplatform.tenancy.api.authentication import acting_user
from csplatform.tenancy.api.viewsets import TenantModelViewSet, TenantReadOnlyViewSet, TenantScopedMixin
from csplatform.tenancy.models import Scope

from ..models import ExpansionOpportunity, OutboundEmail, Playbook, Run, Task
from ..services import (
    outbox_approve,
    outbox_edit,
    outbox_skip,
    playbook_delete,
    playbook_draft,
    playbook_set_enabled,
    run_cancel,
    run_start,
    task_change,
    task_complete,
)
from ..simulation import simulate
from .filtersets import ExpansionOpportunityFilterSet, OutboundEmailFilterSet, RunFilterSet, TaskFilterSet
from .serializers import (
    EmailEditSerializer,
    ExpansionOpportunitySerializer,
    OutboundEmailSerializer,
    PlaybookSerializer,
    ReassignSerializer,
    RescheduleSerializer,
    RunSerializer,
    SimulateSerializer,
    StartRunSerializer,
    TaskSerializer,
    raise_as_api_error,
)


class PlaybookViewSet(TenantModelViewSet):
    """Playbooks addressed by key; steps are validated per kind and errors name the step index."""

    queryset = Playbook.objects
    serializer_class = PlaybookSerializer
    lookup_field = "key"

    def perform_destroy(self, instance):
        playbook_delete(tenant=self.tenant, playbook=instance, actor=acting_user(self.request))

    def _enabled(self, enabled):
        playbook = playbook_set_enabled(
            tenant=self.tenant, playbook=self.get_object(), actor=acting_user(self.request), enabled=enabled
        )
        return Response(self.get_serializer(playbook).data)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def enable(self, request, key=None):
        return self._enabled(True)

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def disable(self, request, key=None):
        return self._enabled(False)

    def _simulated(self, playbook=None):
        """Simulate the body's definition (a change of `playbook` when given), or the saved `playbook` alone.

        The definition is validated as a create or a partial update would be
        (a 400 names the field), and nothing is saved.
        """
        days = SimulateSerializer(data=self.request.data)
        days.is_valid(raise_exception=True)
        definition = self.get_serializer(playbook, data=self.request.data, partial=playbook is not None)
        definition.is_valid(raise_exception=True)
        steps = None
        if definition.validated_data or playbook is None:
            try:
                playbook, steps = playbook_draft(tenant=self.tenant, playbook=playbook, **definition.validated_data)
            except DjangoValidationError as exc:
                raise_as_api_error(exc)
        try:
            report = simulate(tenant=self.tenant, playbook=playbook, steps=steps, days=days.validated_data["days"])
        except DjangoValidationError as exc:
            raise_as_api_error(exc)
        return Response(report)

    @extend_schema(request=SimulateSerializer, responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["post"], required_scope=Scope.READ)
    def simulate(self, request, key=None):
        """Who would have been enrolled over the last `days` days and what would have been sent when; sends nothing.

        Fields of the playbook in the body (as in a PATCH) simulate it changed so, without saving the change.
        """
        return self._simulated(self.get_object())

    @extend_schema(operation_id="v1_playbooks_simulate_draft", request=PlaybookSerializer, responses=OpenApiTypes.OBJECT)
    @action(detail=False, methods=["post"], url_path="simulate", url_name="simulate-draft", required_scope=Scope.READ)
    def simulate_draft(self, request):
        """Simulate a new playbook, given as for a create plus `days`, without saving it."""
        return self._simulated()

    @extend_schema(request=StartRunSerializer, responses=RunSerializer)
    @action(detail=True, methods=["post"])
    def start(self, request, key=None):
        """Start a run for one account by hand."""
        playbook = self.get_object()
        serializer = StartRunSerializer(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        try:
            run = run_start(
                tenant=self.tenant,
                playbook=playbook,
                account=serializer.validated_data["account"],
                actor=acting_user(request),
            )
        except DjangoValidationError as exc:
            raise_as_api_error(exc)
        return Response(RunSerializer(run).data, status=status.HTTP_201_CREATED)


class RunViewSet(TenantReadOnlyViewSet):
    """Runs with their steps and outcomes; filter by `account`, `playbook` (key), `status`."""

    queryset = Run.objects.select_related("playbook").prefetch_related("step_runs__step")
    serializer_class = RunSerializer
    filterset_class = RunFilterSet

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        try:
            run = run_cancel(tenant=self.tenant, run=self.get_object(), actor=acting_user(request))
        except DjangoValidationError as exc:
            raise_as_api_error(exc)
        return Response(self.get_serializer(run).data)


class TaskViewSet(TenantScopedMixin, mixins.CreateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Tasks by owner (email) and due date: `owner`, `due_before`, `open=true`, `account`; a task created here
    comes from the key's creator, as one added on an account's page does."""

    queryset = Task.objects.select_related("owner")
    serializer_class = TaskSerializer
    filterset_class = TaskFilterSet

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def complete(self, request, pk=None):
        task = task_complete(tenant=self.tenant, task=self.get_object(), user=acting_user(request))
        return Response(self.get_serializer(task).data)

    def _change(self, request, serializer_class, field):
        """Set one of the task's owner and date through task_change, the other kept."""
        task = self.get_object()
        serializer = serializer_class(data=request.data, context=self.get_serializer_context())
        serializer.is_valid(raise_exception=True)
        changes = {"owner": task.owner, "due_at": task.due_at, field: serializer.validated_data[field]}
        try:
            task = task_change(tenant=self.tenant, task=task, actor=acting_user(request), **changes)
        except DjangoValidationError as exc:
            raise_as_api_error(exc)
        return Response(self.get_serializer(task).data)

    @extend_schema(request=ReassignSerializer)
    @action(detail=True, methods=["post"])
    def reassign(self, request, pk=None):
        """Give the open task to another member of the tenant (by email)."""
        return self._change(request, ReassignSerializer, "owner")

    @extend_schema(request=RescheduleSerializer)
    @action(detail=True, methods=["post"])
    def reschedule(self, request, pk=None):
        """Move the open task to another time (`due_at`, ISO 8601 with its offset), or to no date (null)."""
        return self._change(request, RescheduleSerializer, "due_at")


class OutboundEmailViewSet(TenantReadOnlyViewSet):
    """Every email the playbooks stored, newest first; held ones (`status=pending_review`) form the outbox.

    Filter by `owner` (the owner CSM's email), `account` and `status`.
    """

    queryset = OutboundEmail.objects.select_related("owner")
    serializer_class = OutboundEmailSerializer
    filterset_class = OutboundEmailFilterSet

    def _decide(self, service, **changes):
        try:
            email = service(tenant=self.tenant, email=self.get_object(), actor=acting_user(self.request), **changes)
        except DjangoValidationError as exc:
            raise_as_api_error(exc)
        return Response(self.get_serializer(email).data)

    def _changes(self, request):
        serializer = EmailEditSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data

    @extend_schema(request=EmailEditSerializer)
    @action(detail=True, methods=["post"])
    def approve(self, request, pk=None):
        """Send the held email, with optional last edits."""
        return self._decide(outbox_approve, **self._changes(request))

    @extend_schema(request=EmailEditSerializer)
    @action(detail=True, methods=["post"])
    def edit(self, request, pk=None):
        return self._decide(outbox_edit, **self._changes(request))

    @extend_schema(request=None)
    @action(detail=True, methods=["post"])
    def skip(self, request, pk=None):
        return self._decide(outbox_skip)


class ExpansionOpportunityViewSet(TenantReadOnlyViewSet):
    """Expansion opportunities the playbooks flagged, newest first.

    Filter by `account` and by creation time with `created_after` / `created_before`.
    """

    queryset = ExpansionOpportunity.objects
    serializer_class = ExpansionOpportunitySerializer
    filterset_class = ExpansionOpportunityFilterSet
