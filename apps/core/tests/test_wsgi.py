from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished
from django.http import StreamingHttpResponse
from django.test import RequestFactory

from apps.core.wsgi import whole_body


def _environ(path):
    return RequestFactory()._base_environ(PATH_INFO=path, REQUEST_METHOD="GET")


def test_a_rendered_response_is_one_body_in_a_list_and_closed(db):
    finished, started = [], []

    def on_finished(sender, **kwargs):
        finished.append(sender)

    request_finished.connect(on_finished, dispatch_uid="test_wsgi")
    try:
        body = whole_body(WSGIHandler())(_environ("/healthz"), lambda status, headers: started.append(status))
    finally:
        request_finished.disconnect(dispatch_uid="test_wsgi")
    assert type(body) is list and len(body) == 1 and body[0]
    assert started == ["200 OK"]
    assert len(finished) == 1  # Django's close(): request_finished, once


def test_a_streamed_response_goes_as_it_is():
    streamed = StreamingHttpResponse(iter([b"a", b"b"]))
    assert whole_body(lambda environ, start_response: streamed)(_environ("/"), None) is streamed
