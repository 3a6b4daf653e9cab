"""Providers' webhooks: deliveries, bounces, complaints and unsubscribes they report, one URL per
provider config: /webhooks/providers/<public id>/<secret>/ (shown in the config's admin page).
The secret in the URL is the credential (ESPs sign differently or not at all; an ESP's own
signature is checked too when its key is in the config's credentials). docs/policy.md."""

from django.core.exceptions import RequestDataTooBig
from django.http import JsonResponse
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt

from apps.api.errors import error_json
from apps.core.errors import InvalidInput
from apps.delivery.feedback import events_parse
from apps.delivery.models import ProviderConfig
from apps.messaging.feedback import provider_events_apply


@csrf_exempt
def provider_webhook(request, public_id, secret: str):
    config = ProviderConfig.objects.select_related("tenant").filter(public_id=public_id).first()
    # Compared in constant time; an unknown config and a wrong secret look the same.
    if not constant_time_compare(secret, config.webhook_secret if config else "-"):
        return error_json(404, "not_found", "No such webhook.")
    if request.method in ("GET", "HEAD"):  # some ESPs check the URL when it is set up
        return JsonResponse({"ok": True})
    if request.method != "POST":
        return error_json(405, "method_not_allowed", "Use POST.")
    try:
        events = events_parse(config=config, request=request)
    except InvalidInput as error:
        return error_json(400, "invalid_request", error.message, error.fields)
    except RequestDataTooBig:
        return error_json(400, "payload_too_large", "body: too large.", {"body": ["Too large."]})
    return JsonResponse(provider_events_apply(config=config, events=events))
