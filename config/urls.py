from django.contrib import admin
from django.urls import path

from apps.core import views as core_views

admin.site.site_header = "Signalbox"
admin.site.site_title = "Signalbox admin"
admin.site.index_title = "Message orchestration"

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("admin/", admin.site.urls),
]
