"""The WSGI application as the web server is given it (config/wsgi.py)."""

from django.http import HttpResponse


def whole_body(application):
    """`application`, answering with a list of one body for a response that is not streamed.

    Given a list, granian sends the body at once; given any other iterable (a Django response is
    one), it iterates it from its I/O thread, taking the GIL back for each chunk and then for
    `close()`, through a channel (granian src/wsgi/io.rs `response_iter`), and under load the
    workers' threads queue for the GIL (the figures are in docs/performance.md). Django's
    `close()` (request_finished: the database connections' age and health) runs here, once the
    body is rendered. Streamed responses (static files, StreamingHttpResponse) go as they are.
    """

    def wrapper(environ, start_response):
        response = application(environ, start_response)
        if not isinstance(response, HttpResponse):
            return response
        body = response.content
        response.close()
        return [body]

    return wrapper
