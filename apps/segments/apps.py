"""Segments: audiences defined with the journeys' condition language, kept as membership rows."""
from django.apps import AppConfig
from django.db.models.signals import post_delete, post_save


class SegmentsConfig(AppConfig):
    name = "apps.segments"
    label = "segments"

    def ready(self) -> None:
        from apps.segments.models import Segment
        from apps.segments.selectors import segments_changed

        for signal in (post_save, post_delete):
            signal.connect(segments_changed, sender=Segment, dispatch_uid=f"segments-{signal}")
