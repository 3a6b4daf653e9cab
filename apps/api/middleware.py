"""Request bodies sent with `Content-Encoding: gzip` (Segment and RudderStack SDKs do)."""

import gzip
import io
import zlib

from django.conf import settings

from apps.api.errors import error_json


class GzipRequestMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if request.META.get("HTTP_CONTENT_ENCODING", "").lower() == "gzip":
            limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
            try:
                with gzip.GzipFile(fileobj=io.BytesIO(request.body)) as stream:
                    body = stream.read(limit + 1)  # bounded: a small bomb cannot fill memory
            except (OSError, EOFError, zlib.error):
                return error_json(400, "invalid_gzip", "The body is not valid gzip.")
            if len(body) > limit:
                return error_json(413, "payload_too_large", "The decompressed body is too large.")
            request._body = body
            request._stream = io.BytesIO(body)
            request.META["CONTENT_LENGTH"] = str(len(body))
            del request.META["HTTP_CONTENT_ENCODING"]
        return self.get_response(request)
