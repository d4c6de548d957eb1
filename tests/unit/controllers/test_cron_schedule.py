"""Cron schedules: parsing, errors that name the field, and next firing times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoal.model.job import CronError, CronSchedule

T = datetime(2026, 11, 23, 8, 0, 30, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(("text", "expected"), [
    ("*/5 * * * *", datetime(2026, 11, 23, 8, 5, tzinfo=UTC)),
    ("* * * * *", datetime(2026, 11, 23, 8, 1, tzinfo=UTC)),
    ("0 * * * *", datetime(2026, 11, 23, 9, 0, tzinfo=UTC)),
    ("30 2 * * *", datetime(2026, 11, 24, 2, 30, tzinfo=UTC)),
    ("0 0 1 1 *", datetime(2027, 1, 1, tzinfo=UTC)),
    ("0 9 * * sat,sun", datetime(2026, 11, 28, 9, 0, tzinfo=UTC)),
    ("0 9 * * 7", datetime(2026, 11, 29, 9, 0, tzinfo=UTC)),  # 7 is Sunday too
    ("15 10-12/2 * jan-mar *", datetime(2027, 1, 1, 10, 15, tzinfo=UTC)),
    ("0 0 29 2 *", datetime(2028, 2, 29, tzinfo=UTC)),
    ("0 0 13 * 5", datetime(2026, 11, 27, tzinfo=UTC)),  # day-of-month OR Friday, as cron does
    ("@hourly", datetime(2026, 11, 23, 9, 0, tzinfo=UTC)),
    ("@weekly", datetime(2026, 11, 29, tzinfo=UTC)),
])
def test_next_after(text: str, expected: datetime) -> None:
    assert CronSchedule.parse(text).next_after(T) == expected


def test_next_after_is_strictly_later_on_a_firing_minute() -> None:
    on_time = datetime(2026, 11, 23, 8, 5, tzinfo=UTC)
    assert CronSchedule.parse("*/5 * * * *").next_after(on_time) == datetime(2026, 11, 23, 8, 10, tzinfo=UTC)


def test_impossible_date_never_fires() -> None:
    assert CronSchedule.parse("0 0 31 2 *").next_after(T) is None


@pytest.mark.parametrize(("text", "fragment"), [
    ("* * * *", "has 4 fields; a schedule has 5"),
    ("61 * * * *", "minute field: 61 is out of range 0-59"),
    ("* 24 * * *", "hour field: 24 is out of range 0-23"),
    ("* * 0 * *", "day of month field: 0 is out of range 1-31"),
    ("* * * 13 *", "month field: 13 is out of range 1-12"),
    ("* * * * 8", "day of week field: 8 is out of range 0-7"),
    ("*/0 * * * *", 'minute field: step "0"'),
    ("* 5-2 * * *", 'hour field: range "5-2" runs backwards; write 2-5'),
    ("* * * foo *", 'month field: "foo" is not a number or a name (jan, feb, mar, ...)'),
    ("1,,2 * * * *", "minute field: empty list item"),
])
def test_errors_name_the_field(text: str, fragment: str) -> None:
    with pytest.raises(CronError) as err:
        CronSchedule.parse(text)
    assert fragment in str(err.value)


def _brute(schedule: CronSchedule, start: datetime, limit_minutes: int) -> datetime | None:
    t = start.replace(second=0, microsecond=0)
    for _ in range(limit_minutes):
        t += timedelta(minutes=1)
        day = t.day in schedule.days
        weekday = (t.isoweekday() % 7) in schedule.weekdays
        day_ok = (day or weekday) if schedule.days_restricted and schedule.weekdays_restricted else (day and weekday)
        if t.minute in schedule.minutes and t.hour in schedule.hours and t.month in schedule.months and day_ok:
            return t
    return None


_FIELD = st.one_of(st.just("*"), st.integers(0, 5).map(str), st.sampled_from(["*/7", "1-4", "0,3", "2-6/2"]))


@settings(max_examples=60, deadline=None)
@given(minute=st.sampled_from(["*", "*/15", "7", "0,30", "10-20/5"]), hour=_FIELD,
       day=st.sampled_from(["*", "1", "15", "1-10/3", "28"]), month=st.sampled_from(["*", "2", "6-8", "*/4"]),
       weekday=st.sampled_from(["*", "0", "1-5", "6"]),
       offset=st.integers(0, 400 * 24 * 60))
def test_next_after_matches_a_minute_by_minute_search(minute: str, hour: str, day: str, month: str, weekday: str,
                                                      offset: int) -> None:
    schedule = CronSchedule.parse(f"{minute} {hour} {day} {month} {weekday}")
    start = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=offset, seconds=17)
    expected = _brute(schedule, start, 20 * 24 * 60)
    got = schedule.next_after(start)
    if expected is not None:
        assert got == expected
    else:
        assert got is None or got > start + timedelta(days=19)
