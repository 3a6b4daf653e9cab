"""Checks on save: each error on its field, with line and column."""

import pytest

from apps.content import sms
from apps.content.compiling import CompileError, compile_source, mjml_errors
from apps.content.validation import content_errors, layout_errors, liquid_errors, sms_errors


def test_liquid_syntax_error_has_line_and_column():
    assert liquid_errors("Hello\n  {{ recipient.first_name | }}", partials={}) == [
        "Line 2, column 3: expected word, found end of expression"]
    assert liquid_errors("a\n\n{% if data.x = 1 %}b{% endif %}", partials={}) == [
        "Line 3, column 14: expected end of expression, found '='"]


def test_unclosed_block_is_reported():
    assert liquid_errors("{% for x in data.y %}{% if data.x %}open{% endfor %}", partials={}) == [
        "Line 1, column 39: unexpected tag 'endfor'"] or liquid_errors(
        "{% if data.x %}open", partials={}) == ["Expected tag endif, found end of expression "
                                                "(a block is not closed)"]
    assert liquid_errors("{% if data.x %}open", partials={}) == [
        "Expected tag endif, found end of expression (a block is not closed)"]


def test_unknown_filter_variable_and_partial():
    assert liquid_errors("a\n{{ data.total | monee }}", partials={}) == [
        "Line 2, column 17: unknown filter 'monee'"]
    assert liquid_errors("{{ reciepient.name }}", partials={}) == [
        "Line 1, column 4: unknown variable 'reciepient' (use recipient, data, tenant, message, batch)"]
    assert liquid_errors("x {% render 'fotter' %}", partials={"footer": "f"}) == [
        "Line 1, column 13: there is no partial named 'fotter'."]
    assert liquid_errors("{% for i in data.items %}{{ i.name | upcase }}{{ forloop.index }}{% endfor %}"
                         "{% assign t = data.x %}{{ t }}{% render 'footer', y: 1 %}",
                         partials={"footer": "{{ y }} {{ tenant.name }}"}) == []


def test_error_inside_a_partial_names_it():
    [error] = liquid_errors("{% render 'footer' %}", partials={"footer": "ok\n{{ data.x | nope }}"})
    assert error == "In partial 'footer', line 2, column 13: unknown filter 'nope'"


def test_invalid_mjml_with_position():
    [error] = mjml_errors("<mj-section>\n  </mj-column>\n</mj-section>")
    # MRML reports where it noticed: the closing tag after the stray one.
    assert error == "Invalid MJML: line 3, column 14: unexpected token"
    [error] = mjml_errors("<mj-section><mj-column><mj-text>x</mj-text></mj-column>")
    assert "Invalid MJML" in error
    assert mjml_errors("{% for i in data.items %}<mj-section><mj-column><mj-text>{{ i }}</mj-text>"
                       "</mj-column></mj-section>{% endfor %}") == []


def test_invalid_json_and_wrong_shape():
    errors = content_errors({"webhook_body": '{\n  "a": 1,\n}', "chat_text": "x", "chat_blocks": '{"a": 1}',
                             "push_title": "t", "push_data": '["x"]'}, partials={})
    assert errors["webhook_body"] == ["Invalid JSON: line 3, column 1: Expecting property name enclosed "
                                      "in double quotes"]
    assert errors["chat_blocks"] == ["Must be a list."]
    assert errors["push_data"] == ["Must be an object."]
    assert content_errors({"webhook_body": '{"a": "{{ data | nope }}"}'}, partials={})["webhook_body"] == [
        "In the string '{{ data | nope }}': Line 1, column 11: unknown filter 'nope'"]


def test_required_fields_per_channel():
    errors = content_errors({"email_subject": "", "email_body": "<mj-text>x</mj-text>",
                             "email_format": "mjml", "push_image": "https://x", "inbox_title": "t",
                             "sms_text": ""}, partials={})
    assert errors == {"email_subject": ["Required when email is used."],
                      "push_title": ["Required when push is used (or body)."]}


def test_layout_needs_the_content_marker_once():
    assert layout_errors("<mjml><mj-body></mj-body></mjml>", "mjml", partials={}) == [
        "Put {{ content }} exactly once where the email body goes."]
    assert layout_errors("<mjml><mj-body>{{ content }}</mj-body></mjml>", "mjml", partials={}) == []
    assert layout_errors("<mj-section>{{ content }}</mj-section>", "mjml", partials={})[0].startswith(
        "An MJML layout is a whole document")


@pytest.mark.parametrize("text, encoding, segments", [
    ("", "GSM-7", 0), ("x" * 160, "GSM-7", 1), ("x" * 161, "GSM-7", 2), ("€" * 80, "GSM-7", 1),
    ("€" * 81, "GSM-7", 2), ("é" * 160, "GSM-7", 1), ("ç" * 70, "UCS-2", 1), ("ç" * 71, "UCS-2", 2),
    ("😀" * 35, "UCS-2", 1), ("😀" * 36, "UCS-2", 2), ("x" * 459, "GSM-7", 3),
])
def test_sms_segments(text, encoding, segments):
    count = sms.segments(text)
    assert (count.encoding, count.segments) == (encoding, segments)


def test_sms_over_the_segment_limit(settings):
    settings.SIGNALBOX_SMS_MAX_SEGMENTS = 2
    assert sms_errors("x" * 306) == []
    assert sms_errors("x" * 307) == ["With the sample data this SMS is 307 characters (GSM-7): 3 segments, "
                                     "more than the limit of 2."]


def test_liquid_lost_by_mjml_is_a_compile_error():
    with pytest.raises(CompileError, match="MJML dropped the Liquid tag {% if x %}"):
        compile_source({"content": {"email": {"subject": "s", "format": "mjml", "body": (
            "<mjml><mj-head>{% if x %}<mj-title>t</mj-title>{% endif %}</mj-head>"
            "<mj-body></mj-body></mjml>")}},
            "locales": {}})


def test_layout_of_another_format_is_refused():
    with pytest.raises(CompileError) as caught:
        compile_source({"content": {"email": {"subject": "s", "format": "html", "body": "<p>x</p>"}},
                        "layout": {"name": "brand", "format": "mjml", "body": "<mjml>{{ content }}</mjml>"},
                        "locales": {}})
    assert caught.value.errors == {"email_body": [
        "The layout 'brand' is MJML; this body is HTML. Pick a layout of the same kind, or none."]}
