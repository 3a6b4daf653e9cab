"""Segments through the API: list and read (size, status). Building them happens in the admin."""

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response

from apps.api.v1.views import ERRORS, TENANT_QUERY
from apps.api.views import TenantAPIView
from apps.core.errors import NotFound
from apps.segments.models import Segment

SEGMENT_EXAMPLE = {
    "key": "pro-users", "name": "Pro users", "size": 1250, "status": "ready",
    "computed_at": "2026-11-23T10:00:00+00:00",
}


def segment_data(segment: Segment, *, full: bool = False) -> dict:
    data = {"key": segment.key, "name": segment.name, "size": segment.member_count, "status": segment.status,
            "computed_at": segment.computed_at.isoformat() if segment.computed_at else None}
    if full:
        data |= {"description": segment.description, "conditions": segment.conditions,
                 "progress": {"done": segment.progress_done, "total": segment.progress_total}}
    return data


class SegmentListView(TenantAPIView):
    @extend_schema(operation_id="segment_list", summary="List segments",
                   description="The tenant's segments with their size (members when last computed or "
                               "updated) and status (`computing` while a full recompute runs).",
                   parameters=[TENANT_QUERY], responses={200: dict, **ERRORS},
                   examples=[OpenApiExample("Segments", response_only=True, value={"segments": [
                       SEGMENT_EXAMPLE]})])
    def get(self, request):
        return Response({"segments": [segment_data(s) for s in
                                      Segment.objects.filter(tenant=self.tenant).order_by("key")]})


class SegmentDetailView(TenantAPIView):
    @extend_schema(operation_id="segment_get", summary="Read a segment",
                   description="Its conditions (apps/journeys/conditions.py language, roots `recipient` "
                               "and `history`; see docs/segments.md), size, status and recompute progress.",
                   parameters=[TENANT_QUERY], responses={200: dict, **ERRORS},
                   examples=[OpenApiExample("Segment", response_only=True, value={
                       **SEGMENT_EXAMPLE, "description": "",
                       "conditions": {"field": "recipient.attributes.plan", "op": "eq", "value": "pro"},
                       "progress": {"done": 5000, "total": 5000}})])
    def get(self, request, key: str):
        segment = Segment.objects.filter(tenant=self.tenant, key=key).first()
        if segment is None:
            raise NotFound(f"No segment with key {key!r}.")
        return Response(segment_data(segment, full=True))
