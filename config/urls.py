from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from apps.api.provider_webhooks import provider_webhook
from apps.api.segment import segment_view
from apps.core import views as core_views
from apps.policy import views as policy_views

admin.site.site_header = "Signalbox"
admin.site.site_title = "Signalbox admin"
admin.site.index_title = "Message orchestration"

SEGMENT_CALLS = "identify|track|page|screen|group|alias"

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("apps.api.v1.urls")),
    # Recipients' hosted pages, reached from links in messages (docs/policy.md).
    path("p/<str:token>", policy_views.preferences_page, name="policy-preferences"),
    path("u/<str:token>", policy_views.unsubscribe, name="policy-unsubscribe"),
    # Providers' reports (bounces, complaints, deliveries): apps/api/provider_webhooks.py.
    path("webhooks/providers/<uuid:public_id>/<str:secret>/", provider_webhook, name="provider-webhook"),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    # The Segment HTTP tracking API (write key as the Basic-auth user name).
    path("v1/batch", segment_view, name="segment-batch"),
    path("v1/import", segment_view, name="segment-import"),
    *[path(f"v1/{kind}", segment_view, {"kind": kind}, name=f"segment-{kind}")
      for kind in SEGMENT_CALLS.split("|")],
]
