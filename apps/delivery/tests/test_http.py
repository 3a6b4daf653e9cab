import pytest
import requests

from apps.delivery import http
from tests.fixtures.servers import FakeProviderServer, Reply


@pytest.mark.parametrize("url", [
    "http://127.0.0.1:9/x", "http://localhost:9/x", "http://10.0.0.8/hook",
    "http://169.254.169.254/latest/meta-data", "http://[::1]:9/x", "http://192.168.1.1/",
])
def test_private_and_reserved_addresses_are_refused(settings, url):
    settings.SIGNALBOX_HTTP_ALLOW_PRIVATE = []
    with pytest.raises(http.BlockedAddress):
        http.safe_post(url, body=b"{}")


@pytest.mark.parametrize("url", ["ftp://example.com/x", "file:///etc/passwd", "http:///nohost"])
def test_only_http_urls(url):
    with pytest.raises(http.HttpError) as exc:
        http.safe_post(url, body=b"{}")
    assert exc.value.sent is False


@pytest.fixture
def server():
    server = FakeProviderServer()
    server.start()
    yield server
    server.stop()


def test_allowed_loopback_answers_and_redirects_are_not_followed(server):
    server.script(Reply(302, headers={"Location": "http://169.254.169.254/"}))
    response = http.safe_post(f"{server.url}/hook", body=b'{"a": 1}')
    assert response.status == 302 and len(server.requests) == 1


def test_the_response_body_is_capped(server):
    server.script(Reply(200, body=b"x" * (http.MAX_RESPONSE_BYTES * 3)))
    assert len(http.safe_post(server.url, body=b"").body) == http.MAX_RESPONSE_BYTES


def test_refused_connection_was_not_sent_and_a_timeout_may_have_been(server):
    port = server.httpd.server_address[1]
    server.stop()
    with pytest.raises(http.HttpError) as refused:
        http.safe_post(f"http://127.0.0.1:{port}/", body=b"")
    assert refused.value.sent is False
    slow = FakeProviderServer()
    slow.default = Reply(delay=1.5)
    slow.start()
    try:
        with pytest.raises(http.HttpError) as timed_out:
            http.safe_post(slow.url, body=b"", timeout=0.5)
        assert timed_out.value.sent is True
    finally:
        slow.stop()


def test_a_requests_session_sends_through_the_safe_client(server, settings):
    server.script(Reply(302, headers={"Location": f"{server.url}/elsewhere"}))
    response = http.SafeSession().post(f"{server.url}/v3/mail/send", data="{\"subject\": \"Grüße\"}",
                                       headers={"Authorization": "Bearer k"})
    assert response.status_code == 302 and [r.path for r in server.requests] == ["/v3/mail/send"]
    assert response.json() == {"ok": True} and response.headers["Location"].endswith("/elsewhere")
    assert server.requests[0].json() == {"subject": "Grüße"}
    assert server.requests[0].headers["Authorization"] == "Bearer k"
    settings.SIGNALBOX_HTTP_ALLOW_PRIVATE = []
    with pytest.raises(requests.ConnectionError) as blocked:
        http.SafeSession().post(f"{server.url}/v3/mail/send", data="{}")
    assert isinstance(blocked.value.__cause__, http.BlockedAddress) and len(server.requests) == 1


def test_a_requests_session_tells_a_refused_connection_from_a_late_answer(server):
    server.script(Reply(delay=1.5))
    with pytest.raises(requests.ReadTimeout) as late:
        http.SafeSession().post(server.url, data=b"{}", timeout=0.5)
    assert late.value.__cause__.sent is True
    port = server.httpd.server_address[1]
    server.stop()
    with pytest.raises(requests.ConnectionError) as refused:
        http.SafeSession().post(f"http://127.0.0.1:{port}/", data=b"{}")
    assert refused.value.__cause__.sent is False
