from django.urls import path

from apps.api.v1 import views

urlpatterns = [
    path("recipients/<str:external_id>", views.RecipientDetailView.as_view(), name="recipient-detail"),
    path("events", views.EventCreateView.as_view(), name="event-create"),
    path("events/batch", views.EventBatchView.as_view(), name="event-batch"),
]
