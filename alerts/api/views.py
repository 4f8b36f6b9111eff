from django.core.exceptions import ValidationError as DjangoValidationError
from django.db.models import Count, Q
from django.http import StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import exceptions, status
from rest_framework.decorators import action
from rest_framework.response import Response

from csplatform.spreadsheets import as_text, line_writer
from csplatform.tenancy.api.authentication import acting_user
from csplatform.tenancy.api.viewsets import TenantModelViewSet, TenantReadOnlyViewSet
from csplatform.tenancy.models import Scope
from csplatform.tenancy.rls import tenant_context
from lifecycle.api.serializers import raise_as_api_error

from .. import services, webhooks
from ..filtersets import WebhookDeliveryFilterSet
from ..models import Alert, AlertRule, DeliveryStatus, Segment, SegmentMembership, WebhookDelivery, WebhookSubscription
from .filtersets import AlertFilterSet, SegmentMemberFilterSet
from .serializers import (
    AlertActionSerializer,
    AlertIdsSerializer,
    AlertRuleSerializer,
    AlertsActionResultSerializer,
    AlertsActionSerializer,
    AlertSerializer,
    AlertsSnoozeSerializer,
    SegmentMemberSerializer,
    SegmentPreviewSerializer,
    SegmentSerializer,
    WebhookDeliverySerializer,
    WebhookRetriedSerializer,
    WebhookRetrySerializer,
    WebhookSecretSerializer,
    WebhookSubscriptionSerializer,
)

CSV_COLUMNS = [
    "segment", "account_id", "account_external_id", "account_name", "owner", "plan", "mrr",
    "contact_id", "contact_external_id", "contact_email", "contact_name", "contact_role", "entered_at",
]


def _csv_lines(tenant, segment, memberships):
    writer = line_writer()
    with tenant_context(tenant):
        yield writer.writerow(CSV_COLUMNS)
        for member in memberships.iterator(chunk_size=2000):
            account, contact = member.account, member.contact
            # Free text that a spreadsheet would run as a formula gets a leading quote, as in the portfolio's file.
            yield writer.writerow([
                segment.key, account.pk, as_text(account.external_id), as_text(account.name),
                account.owner.email if account.owner_id else "", as_text(account.plan), account.mrr,
                contact.pk if contact else "", as_text(contact.external_id) if contact else "",
                as_text(contact.email) if contact else "", as_text(contact.name) if contact else "",
                contact.role if contact else "", member.entered_at.isoformat(),
            ])


class SegmentViewSet(TenantModelViewSet):
    """Saved criteria over accounts or contacts, addressed by key; members are refreshed by the pipeline."""

    queryset = Segment.objects.annotate(
        member_count=Count("memberships", filter=Q(memberships__left_at__isnull=True))
    ).order_by("name", "id")
    serializer_class = SegmentSerializer
    filterset_class = None
    lookup_field = "key"

    def perform_destroy(self, instance):
        services.segment_delete(tenant=self.tenant, segment=instance, actor=acting_user(self.request))

    def _members(self, segment):
        memberships = (
            SegmentMembership.objects.for_tenant(self.tenant)
            .current()
            .filter(segment=segment)
            .select_related("account", "account__owner", "contact")
            .order_by("account__name", "account_id", "contact_id")
        )
        return SegmentMemberFilterSet(self.request.query_params, queryset=memberships, request=self.request).qs

    @extend_schema(responses=SegmentMemberSerializer(many=True))
    @action(detail=True, methods=["get"])
    def members(self, request, key):
        """The segment's current members with when they entered; filter by `q`, `owner`, `plan`, `role`, `entered_since`."""
        page = self.paginate_queryset(self._members(self.get_object()))
        return self.get_paginated_response(SegmentMemberSerializer(page, many=True).data)

    @extend_schema(responses={(200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="One row per member.")})
    @action(detail=True, methods=["get"], url_path="export")
    def export(self, request, key):
        """The current members as CSV (same filters as `members`), streamed."""
        segment = self.get_object()
        response = StreamingHttpResponse(_csv_lines(self.tenant, segment, self._members(segment)), content_type="text/csv")
        response["Content-Disposition"] = f'attachment; filename="segment-{segment.key}.csv"'
        return response

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"], filterset_class=None)
    def count(self, request, key):
        """How many match the criteria right now (`live`) and how many are members as of the last refresh."""
        segment = self.get_object()
        live = services.segment_live_members(tenant=self.tenant, segment=segment).count()
        return Response({"live": live, "members": segment.member_count})

    @extend_schema(request=SegmentPreviewSerializer, responses=OpenApiTypes.OBJECT)
    @action(detail=False, methods=["post"], filterset_class=None, required_scope=Scope.READ)
    def preview(self, request):
        """Count what criteria text would match now, with a sample, before saving it as a segment."""
        serializer = SegmentPreviewSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            result = services.segment_preview(
                tenant=self.tenant,
                text=serializer.validated_data["criteria_text"],
                subject=serializer.validated_data["subject"],
            )
        except DjangoValidationError as exc:
            raise_as_api_error(exc)
        sample = [{"id": row.pk, "name": str(row)} for row in result["sample"]]
        return Response({"count": result["count"], "sample": sample})


class AlertRuleViewSet(TenantModelViewSet):
    """Conditions that open an alert per account while they hold, addressed by key."""

    queryset = AlertRule.objects
    serializer_class = AlertRuleSerializer
    lookup_field = "key"

    def perform_destroy(self, instance):
        services.alert_rule_delete(tenant=self.tenant, rule=instance, actor=acting_user(self.request))


class AlertViewSet(TenantReadOnlyViewSet):
    """Alerts, newest first (`ordering=opened_at`: oldest first; `-severity`: the most severe first): filter by
    `status`, `severity`, `owner` (email), `rule` (key), `account` (id), `snoozed`."""

    queryset = Alert.objects.select_related(
        "rule", "account", "account__owner", "acknowledged_by", "resolved_by", "snoozed_by"
    )
    serializer_class = AlertSerializer
    filterset_class = AlertFilterSet

    def _act(self, service):
        serializer = AlertActionSerializer(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        try:
            alert = service(
                tenant=self.tenant,
                alert=self.get_object(),
                user=acting_user(self.request),
                note=serializer.validated_data["note"],
            )
        except DjangoValidationError as exc:
            raise_as_api_error(exc)
        return Response(AlertSerializer(self.get_queryset().get(pk=alert.pk)).data)

    @extend_schema(request=AlertActionSerializer, responses=AlertSerializer)
    @action(detail=True, methods=["post"], filterset_class=None)
    def acknowledge(self, request, pk):
        """Someone is on it: an open alert becomes acknowledged, by the key's creator."""
        return self._act(services.alert_acknowledge)

    @extend_schema(request=AlertActionSerializer, responses=AlertSerializer)
    @action(detail=True, methods=["post"], filterset_class=None)
    def resolve(self, request, pk):
        """Close an open or acknowledged alert by hand, with a note."""
        return self._act(services.alert_resolve)

    def _act_on_many(self, service, serializer_class=AlertsActionSerializer, **fixed):
        """Run `service` on the posted ids with the posted fields besides them; answer which changed."""
        serializer = serializer_class(data=self.request.data)
        serializer.is_valid(raise_exception=True)
        fields = dict(serializer.validated_data)
        ids = sorted(set(fields.pop("ids")))
        try:
            changed = service(tenant=self.tenant, alert_ids=ids, **fields, **fixed)
        except DjangoValidationError as exc:
            raise_as_api_error(exc)
        return Response({"changed": changed, "unchanged": sorted(set(ids) - set(changed))})

    @extend_schema(
        operation_id="v1_alerts_acknowledge_many",
        request=AlertsActionSerializer,
        responses=AlertsActionResultSerializer,
    )
    @action(detail=False, methods=["post"], url_path="acknowledge", filterset_class=None)
    def acknowledge_many(self, request):
        """Acknowledge the open ones of these alerts, with one note; the others are left as they were."""
        return self._act_on_many(services.alerts_acknowledge, user=acting_user(request))

    @extend_schema(
        operation_id="v1_alerts_resolve_many", request=AlertsActionSerializer, responses=AlertsActionResultSerializer
    )
    @action(detail=False, methods=["post"], url_path="resolve", filterset_class=None)
    def resolve_many(self, request):
        """Resolve by hand the open or acknowledged ones of these alerts, with one note."""
        return self._act_on_many(services.alerts_resolve, user=acting_user(request))

    @extend_schema(
        operation_id="v1_alerts_snooze_many", request=AlertsSnoozeSerializer, responses=AlertsActionResultSerializer
    )
    @action(detail=False, methods=["post"], url_path="snooze", filterset_class=None)
    def snooze_many(self, request):
        """Put the open or acknowledged ones of these alerts out of sight until `until`; they keep their status."""
        return self._act_on_many(services.alerts_snooze, AlertsSnoozeSerializer, user=acting_user(request))

    @extend_schema(
        operation_id="v1_alerts_wake_many", request=AlertIdsSerializer, responses=AlertsActionResultSerializer
    )
    @action(detail=False, methods=["post"], url_path="wake", filterset_class=None)
    def wake_many(self, request):
        """Bring the snoozed ones of these alerts back now."""
        return self._act_on_many(services.alerts_wake, AlertIdsSerializer)


class WebhookSubscriptionViewSet(TenantModelViewSet):
    """The tenant's webhook endpoints. The signing secret is in the create answer and from rotate-secret only."""

    queryset = WebhookSubscription.objects
    serializer_class = WebhookSubscriptionSerializer
    filterset_class = None

    def perform_destroy(self, instance):
        webhooks.webhook_subscription_delete(tenant=self.tenant, subscription=instance, actor=acting_user(self.request))

    @extend_schema(request=None, responses=WebhookSecretSerializer)
    @action(detail=True, methods=["post"], url_path="rotate-secret", filterset_class=None)
    def rotate_secret(self, request, pk):
        """Replace the signing secret and show the new one, once."""
        secret = webhooks.webhook_secret_rotate(
            tenant=self.tenant, subscription=self.get_object(), actor=acting_user(request)
        )
        return Response({"secret": secret})

    @extend_schema(request=None, responses=WebhookDeliverySerializer)
    @action(detail=True, methods=["post"], filterset_class=None)
    def test(self, request, pk):
        """Send a `webhook.test` event to this endpoint now; the answer is the queued delivery."""
        delivery = webhooks.webhook_send_test(tenant=self.tenant, subscription=self.get_object())
        return Response(WebhookDeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)

    @extend_schema(request=WebhookRetrySerializer, responses=WebhookRetriedSerializer)
    @action(detail=True, methods=["post"], url_path="retry-failed", filterset_class=None)
    def retry_failed(self, request, pk):
        """Send this endpoint's failed deliveries again, each with its event id and body and every attempt anew."""
        serializer = WebhookRetrySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        retried = webhooks.webhook_deliveries_retry(
            tenant=self.tenant, subscription=self.get_object(), actor=acting_user(request),
            delivery_ids=serializer.validated_data.get("ids"),
        )
        return Response({"retried": retried})

    @extend_schema(
        parameters=[
            OpenApiParameter("status", str, enum=DeliveryStatus.values, description="Only deliveries in this state."),
            OpenApiParameter(
                "event_type", str, enum=webhooks.DELIVERY_EVENT_TYPES, description="Only deliveries of this event."
            ),
        ],
        responses=WebhookDeliverySerializer(many=True),
    )
    @action(detail=True, methods=["get"])
    def deliveries(self, request, pk):
        """The delivery log of this endpoint, newest first; filter by `status` and `event_type`."""
        deliveries = WebhookDelivery.objects.for_tenant(self.tenant).filter(subscription=self.get_object())
        filterset = WebhookDeliveryFilterSet(request.query_params, queryset=deliveries, request=request)
        if not filterset.is_valid():
            raise exceptions.ValidationError(filterset.errors)
        page = self.paginate_queryset(filterset.qs)
        return self.get_paginated_response(WebhookDeliverySerializer(page, many=True).data)
