"""The demo town's patterns: rush hours, weekends, pollution episodes, congestion, silence."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from statistics import mean

import orjson
import pytest

from devices.profiles.registry import PROFILES
from stadspuls import demo_patterns as patterns
from stadspuls.demo import due_slots, example_entity_ids, is_silent, messages_between
from stadspuls.demo_town import DEVICES, demo_devices

# Brussels is UTC+1 in winter: 2026-11-25 is a Wednesday, 2026-11-28 a Saturday.
WEDNESDAY = datetime(2026, 11, 25, tzinfo=UTC)
SATURDAY = datetime(2026, 11, 28, tzinfo=UTC)


def at(day: datetime, local_hour: float) -> datetime:
    """The UTC moment of `local_hour` Brussels time (UTC+1 in November) on `day`."""
    return day + timedelta(hours=local_hour - 1)


@pytest.mark.parametrize("mode", patterns.MODES)
@pytest.mark.parametrize("rush_hour", [8.0, 17.0])
def test_weekday_rush_hours_carry_more_traffic_than_the_night(mode, rush_hour):
    rush = patterns.traffic_demand(at(WEDNESDAY, rush_hour), mode)
    night = patterns.traffic_demand(at(WEDNESDAY, 3.0), mode)
    assert rush > 4 * night


@pytest.mark.parametrize("mode", ["car", "heavy", "bike"])
@pytest.mark.parametrize("hour", [8.0, 17.0])
def test_weekends_are_quieter_than_weekdays_at_rush_hour(mode, hour):
    assert patterns.traffic_demand(at(SATURDAY, hour), mode) < patterns.traffic_demand(
        at(WEDNESDAY, hour), mode
    )


@pytest.mark.parametrize("mode", ["car", "heavy", "bike"])
def test_a_weekday_counts_more_over_the_whole_day(mode):
    scales = {mode: 300.0}
    rng = random.Random(1)

    def day_total(day: datetime) -> int:
        return sum(
            sum(patterns.counter_counts(at(day, hour), scales, rng)[mode]) for hour in range(24)
        )

    assert day_total(WEDNESDAY) > day_total(SATURDAY)


def test_counter_counts_follow_the_rush_hour_with_a_fixed_seed():
    rng = random.Random(7)
    scales = {"bike": 300.0, "car": 250.0}
    rush = patterns.counter_counts(at(WEDNESDAY, 8.0), scales, rng)
    night = patterns.counter_counts(at(WEDNESDAY, 3.0), scales, rng)
    assert sum(rush["bike"]) > 5 * sum(night["bike"])
    assert sum(rush["car"]) > 5 * sum(night["car"])


def test_an_episode_evening_pushes_pm10_and_no2_over_the_eu_limits():
    rng = random.Random(3)
    episode_day = next(
        WEDNESDAY + timedelta(days=offset)
        for offset in range(2)
        if patterns.episode_strength(at(WEDNESDAY + timedelta(days=offset), 22.0)) > 0.9
    )
    evening = [patterns.air_quality(at(episode_day, 22.0), rng, 1.8) for _ in range(20)]
    assert mean(sample.pm10 for sample in evening) > patterns.PM10_DAILY_LIMIT
    assert max(sample.no2 for sample in evening) > patterns.NO2_HOURLY_LIMIT
    quiet_day = episode_day + timedelta(days=1)
    afternoon = [patterns.air_quality(at(quiet_day, 14.0), rng, 1.0) for _ in range(20)]
    assert max(sample.pm10 for sample in afternoon) < patterns.PM10_DAILY_LIMIT
    assert max(sample.no2 for sample in afternoon) < patterns.NO2_HOURLY_LIMIT


@pytest.mark.parametrize("exposure", [0.3, 1.0, 1.8])
def test_air_quality_values_are_plausible_all_day(exposure):
    rng = random.Random(11)
    for hour in range(0, 48):
        sample = patterns.air_quality(at(WEDNESDAY, hour), rng, exposure)
        assert 1.0 <= sample.pm25 <= 150
        assert sample.pm10 >= sample.pm25
        assert 1.0 <= sample.no2 <= 400


def test_no2_is_higher_at_rush_hour_at_a_busy_street():
    rng = random.Random(5)
    quiet_day = next(
        WEDNESDAY + timedelta(days=offset)
        for offset in range(2)
        if patterns.episode_strength(at(WEDNESDAY + timedelta(days=offset), 8.0)) < 0.01
    )
    rush = mean(patterns.air_quality(at(quiet_day, 8.0), rng, 1.8).no2 for _ in range(20))
    night = mean(patterns.air_quality(at(quiet_day, 3.0), rng, 1.8).no2 for _ in range(20))
    assert rush > 2 * night


@pytest.mark.parametrize(
    ("day", "hour", "congested"),
    [
        (WEDNESDAY, 8.0, True),
        (WEDNESDAY, 17.0, True),
        (WEDNESDAY, 3.0, False),
        (WEDNESDAY, 12.5, False),
        (SATURDAY, 8.0, False),
        (SATURDAY, 17.0, False),
    ],
)
def test_loops_are_congested_at_weekday_peaks_only(day, hour, congested):
    lane = patterns.lane_minute(at(day, hour), random.Random(2))
    assert lane.congested is congested
    if congested:
        assert lane.occupancy >= 30
        assert max(lane.speeds.values()) < 50
    else:
        assert lane.occupancy < 30
        assert lane.speeds["2"] > 80 or lane.counts["2"] == 0


def test_due_slots_are_the_completed_intervals_aligned_to_the_cadence():
    loop = next(device for device in DEVICES if device.profile == "traffic-loop")
    after = datetime(2026, 11, 25, 8, 0, 30, tzinfo=UTC)
    until = datetime(2026, 11, 25, 8, 3, 10, tzinfo=UTC)
    assert due_slots(loop, after, until) == [
        datetime(2026, 11, 25, 8, 0, tzinfo=UTC),
        datetime(2026, 11, 25, 8, 1, tzinfo=UTC),
        datetime(2026, 11, 25, 8, 2, tzinfo=UTC),
    ]
    assert due_slots(loop, until, until) == []


def test_some_devices_fall_silent_and_the_rest_keep_reporting():
    started = WEDNESDAY
    silent = {d.device_id for d in DEVICES if is_silent(d, started + timedelta(hours=1), started)}
    assert 2 <= len(silent) <= 3
    assert not any(is_silent(d, started - timedelta(hours=4), started) for d in DEVICES)


def test_every_message_of_the_town_decodes_with_its_profile():
    devices = dict(demo_devices())
    started = WEDNESDAY + timedelta(hours=8)
    messages = list(messages_between(started - timedelta(hours=2), started, started, seed=1))
    assert {message.profile for message in messages} == set(example_entity_ids())
    for message in messages:
        profile = PROFILES[message.profile]
        key = profile.device_key(message.topic)
        assert key in devices, message.topic
        decoded = profile.decode(message.topic, message.payload, devices[key], started)
        assert decoded.readings, message.topic
    # The same interval of the same device is the same message, so a resend is a duplicate.
    again = list(messages_between(started - timedelta(hours=2), started, started, seed=1))
    assert [orjson.loads(m.payload) for m in again] == [orjson.loads(m.payload) for m in messages]
