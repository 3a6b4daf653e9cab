from django.urls import path

from apps.api.v1 import broadcasts, journeys, messages, preferences, segments, templates, views

urlpatterns = [
    path("recipients/<str:external_id>", views.RecipientDetailView.as_view(), name="recipient-detail"),
    path("recipients/<str:external_id>/preferences", preferences.PreferencesView.as_view(),
         name="recipient-preferences"),
    path("events", views.EventCreateView.as_view(), name="event-create"),
    path("events/batch", views.EventBatchView.as_view(), name="event-batch"),
    path("messages", messages.MessageListCreateView.as_view(), name="message-list"),
    path("messages/<int:message_id>", messages.MessageDetailView.as_view(), name="message-detail"),
    path("messages/<int:message_id>/cancel", messages.MessageCancelView.as_view(), name="message-cancel"),
    path("broadcasts", broadcasts.BroadcastCreateView.as_view(), name="broadcast-create"),
    path("broadcasts/<int:broadcast_id>", broadcasts.BroadcastDetailView.as_view(), name="broadcast-detail"),
    path("broadcasts/<int:broadcast_id>/cancel", broadcasts.BroadcastCancelView.as_view(),
         name="broadcast-cancel"),
    path("broadcasts/<int:broadcast_id>/pause", broadcasts.BroadcastPauseView.as_view(),
         name="broadcast-pause"),
    path("broadcasts/<int:broadcast_id>/resume", broadcasts.BroadcastResumeView.as_view(),
         name="broadcast-resume"),
    path("journeys/cancel", journeys.JourneyCancelView.as_view(), name="journeys-cancel"),
    path("segments", segments.SegmentListView.as_view(), name="segment-list"),
    path("segments/<str:key>", segments.SegmentDetailView.as_view(), name="segment-detail"),
    path("templates", templates.TemplateListView.as_view(), name="template-list"),
    path("templates/<str:key>", templates.TemplateDetailView.as_view(), name="template-detail"),
    path("templates/<str:key>/render", templates.TemplateRenderView.as_view(), name="template-render"),
]
