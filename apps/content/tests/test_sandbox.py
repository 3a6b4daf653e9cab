"""A template cannot reach Python internals, files, the network or settings, and cannot run
away with CPU or memory: every attempt stops with a clear error."""

import time

import pytest
from django.conf import settings

from apps.content.compiling import CompileError, compile_source
from apps.content.rendering import CompiledVersion, RenderError, context_for

CONTEXT = context_for(recipient={"first_name": "Ada", "attributes": {"plan": "pro"}},
                      data={"items": [1, 2], "s": "abc"}, tenant={"name": "Acme"}, message={"id": "1"})


def render(text: str, partials: dict | None = None) -> str:
    compiled = CompiledVersion(compile_source({
        "content": {"sms": {"text": text}}, "partials": partials or {}, "locales": {}}))
    return compiled.render(locale="", channel="sms", context=CONTEXT)["text"]


@pytest.mark.parametrize("text", [
    "{{ data.__class__ }}", "{{ data.__class__.__mro__ }}", "{{ data.items.__init__.__globals__ }}",
    "{{ recipient.__dict__ }}", "{{ data.s.upper }}", "{{ data.keys }}", "{{ data['__class__'] }}",
    "{{ settings.SECRET_KEY }}", "{{ SECRET_KEY }}", "{{ os.environ }}", "{{ request.user }}",
])
def test_python_internals_and_settings_are_unreachable(text):
    out = render(f"[{text}]")
    assert out == "[]"
    assert settings.SECRET_KEY not in out


@pytest.mark.parametrize("text", [
    "{% include '/etc/passwd' %}", "{% render '../config/settings/base.py' %}",
    "{% render 'config/settings/test.py' %}", "{% include data.s %}",
])
def test_no_file_system(text):
    with pytest.raises(RenderError, match="sms.text: line 1, column .*: .*"):
        render(text)


def test_mj_include_and_remote_stylesheets_are_refused(tmp_path):
    secret = tmp_path / "secret.css"
    secret.write_text(".x { color: #abcdef; }")
    with pytest.raises(CompileError, match="mj-include"):
        compile_source({"content": {"email": {"subject": "s", "format": "mjml",
                                              "body": f'<mj-include path="{tmp_path}/x.mjml" />'}},
                        "locales": {}})
    compiled = compile_source({"content": {"email": {"subject": "s", "format": "html", "body": (
        f'<html><head><link rel="stylesheet" href="{secret}"><style>@import url("file://{secret}");</style>'
        '</head><body><p class="x">hi</p></body></html>')}}, "locales": {}})
    assert "#abcdef" not in compiled["locales"][""]["email"]["html"]


@pytest.mark.parametrize("text, error", [
    ("{% for i in (1..100000000) %}x{% endfor %}", "loop iteration limit reached"),
    ("{% for i in (1..1000) %}{% for j in (1..1000) %}{% endfor %}{% endfor %}", "loop iteration limit"),
    ("{% for i in (1..5000) %}{{ 'x' | append: '" + "y" * 120 + "' }}{% endfor %}", "output stream limit"),
    ("{% assign s = 'xxxxxxxxxx' %}{% for i in (1..40) %}{% assign s = s | append: s %}{% endfor %}",
     "limit reached|too large"),
    ("{{ (1..100000000) | join: ',' }}", "join: more than 10,000 items"),
    ("{{ (1..100000000) | sort | first }}", "sort: more than 10,000 items"),
    ("{% assign s = 'aaaaaaaaaaaaaaaa' %}{{ s" + (" | replace: 'a', '" + "a" * 60 + "'") * 3 + " }}",
     "replace: the result would exceed"),
    ("{% assign n = 99 %}{% for i in (1..64) %}{% assign n = n | times: n %}{% endfor %}{{ n }}",
     "limit reached"),
])
def test_runaway_templates_stop_quickly_with_a_clear_error(text, error):
    started = time.perf_counter()
    with pytest.raises(RenderError, match=error):
        render(text)
    assert time.perf_counter() - started < 2


def test_recursive_partials_stop_at_the_depth_limit():
    with pytest.raises(RenderError, match="maximum context depth reached|in partial 'loop'"):
        render("{% render 'loop' %}", partials={"loop": "x{% render 'loop' %}"})


def test_errors_never_leak_settings():
    for text in ("{{ x | nope }}", "{% render 'missing' %}", "{{ 'x' | date: 5 }}"):
        try:
            render(text)
        except RenderError as error:
            assert settings.SECRET_KEY not in error.message
