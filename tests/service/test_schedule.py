"""Schedule: interval starts on multiples since the epoch (every process agrees), cron by croniter."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from vulnwatch.pipeline import Schedule

UTC = timezone.utc


def test_interval_starts_are_aligned_and_strictly_later():
    s = Schedule(timedelta(minutes=15))
    t = datetime(2026, 3, 1, 10, 7, 30, tzinfo=UTC)
    assert s.start_of(t) == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert s.next_after(t) == datetime(2026, 3, 1, 10, 15, tzinfo=UTC)
    assert s.next_after(datetime(2026, 3, 1, 10, 15, tzinfo=UTC)) == datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    assert s.start_of(datetime(2026, 3, 1, 10, 15, tzinfo=UTC)) == datetime(2026, 3, 1, 10, 15, tzinfo=UTC)
    assert s.period(t) == timedelta(minutes=15)
    other_zone = t.astimezone(timezone(timedelta(hours=5)))        # the same instant elsewhere
    assert s.start_of(other_zone) == s.start_of(t)


def test_cron_expression():
    s = Schedule(cron="0 3 * * *")
    t = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert s.next_after(t) == datetime(2026, 3, 2, 3, 0, tzinfo=UTC)
    assert s.start_of(t) == datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    assert s.start_of(datetime(2026, 3, 1, 3, 0, tzinfo=UTC)) == datetime(2026, 3, 1, 3, 0, tzinfo=UTC)
    assert s.period(t) == timedelta(days=1)
    assert Schedule(cron="*/5 * * * *").next_after(t + timedelta(minutes=1)) == t + timedelta(minutes=5)


def test_bad_schedules_are_refused():
    with pytest.raises(ValueError, match="bad cron expression 'every day'"):
        Schedule(cron="every day")
    with pytest.raises(ValueError, match="positive interval"):
        Schedule(timedelta(0))


def test_service_config_errors_name_the_key(config_error, load):
    e = config_error("service:\n  cron: '61 * * * *'\n")
    assert "service.cron" in str(e) and "bad cron expression '61 * * * *'" in str(e)
    e = config_error("service:\n  lease_ttl: 500ms\n")
    assert "service.lease_ttl" in str(e) and "at least 1s" in str(e)
    e = config_error("service:\n  intervall: 5m\n")
    assert "service.intervall" in str(e) and "interval" in str(e)
    cfg = load("service:\n  cron: '*/10 * * * *'\n  workers: true\n  health_port: 9000\n")
    assert cfg.service.cron == "*/10 * * * *" and cfg.service.workers and cfg.service.health_port == 9000
    from vulnwatch.config import config_summary

    line = [x for x in config_summary(cfg) if x.startswith("service:")]
    assert line == ["service: cycles cron '*/10 * * * *' (UTC), lease 5m, workers share the store (claims), "
                    "health on 0.0.0.0:9000"]
