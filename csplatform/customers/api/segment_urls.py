from django.urls import re_path

from . import segment_views

# Segment SDKs post without a trailing slash; both forms are accepted.
urlpatterns = [
    re_path(r"^batch/?$", segment_views.SegmentBatchView.as_view(), name="segment-batch"),
    re_path(r"^import/?$", segment_views.SegmentBatchView.as_view(), name="segment-import"),
    re_path(r"^track/?$", segment_views.SegmentTrackView.as_view(), name="segment-track"),
    re_path(r"^identify/?$", segment_views.SegmentIdentifyView.as_view(), name="segment-identify"),
    re_path(r"^group/?$", segment_views.SegmentGroupView.as_view(), name="segment-group"),
    re_path(r"^page/?$", segment_views.SegmentPageView.as_view(), name="segment-page"),
]
