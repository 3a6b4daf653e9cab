from datetime import UTC, datetime, timedelta

from apps.events.services import event_time

RECEIVED = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def test_no_timestamp_means_received_at():
    assert event_time(timestamp=None, sent_at=None, received_at=RECEIVED) == (RECEIVED, False)


def test_a_timestamp_without_sent_at_is_taken_as_is():
    ts = RECEIVED - timedelta(hours=3)
    assert event_time(timestamp=ts, sent_at=None, received_at=RECEIVED) == (ts, False)


def test_client_clock_skew_is_corrected_with_sent_at():
    # The client's clock runs 10 minutes fast: it stamped the event 1 minute before sending.
    sent_at = RECEIVED + timedelta(minutes=10)
    ts = sent_at - timedelta(minutes=1)
    assert event_time(timestamp=ts, sent_at=sent_at, received_at=RECEIVED) == (
        RECEIVED - timedelta(minutes=1), False)


def test_a_timestamp_far_in_the_future_is_clamped_and_flagged():
    ts = RECEIVED + timedelta(days=2)
    assert event_time(timestamp=ts, sent_at=None, received_at=RECEIVED) == (RECEIVED, True)
    slightly = RECEIVED + timedelta(minutes=2)  # within tolerance: kept
    assert event_time(timestamp=slightly, sent_at=None, received_at=RECEIVED) == (slightly, False)
