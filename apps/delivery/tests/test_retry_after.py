from datetime import timedelta
from email.utils import format_datetime

import pytest

from apps.core import clock
from apps.delivery.providers.base import classify, retry_after_seconds

pytestmark = pytest.mark.django_db


def test_retry_after_in_seconds_or_as_an_http_date():
    assert retry_after_seconds("120") == 120
    in_90s = format_datetime(clock.now() + timedelta(seconds=90), usegmt=True)
    assert 85 <= retry_after_seconds(in_90s) <= 90
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_a_429_carries_its_retry_after_and_a_400_is_permanent():
    throttled = classify(429, "slow down", "7")
    assert (throttled.permanent, throttled.retry_after) == (False, 7)
    assert classify(400, "bad", None).permanent and classify(202, "", None) is None
