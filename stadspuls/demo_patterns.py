"""Pure patterns of the demo town: traffic by hour and weekday, air quality, loop congestion.

No clock, no network: every function takes the moment (and a seeded random generator) and
returns numbers, so the patterns are tested with fixed times (tests/unit/test_demo.py).
Local time is Europe/Brussels, where the rush hours happen.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

BRUSSELS = ZoneInfo("Europe/Brussels")

#: EU limit values (Directive 2008/50/EC, kept by Directive (EU) 2024/2881): PM10 daily mean
#: 50 µg/m³; NO2 hourly mean 200 µg/m³. PM2.5 has a daily limit of 25 µg/m³ from 2030.
PM10_DAILY_LIMIT = 50.0
PM25_DAILY_LIMIT = 25.0
NO2_HOURLY_LIMIT = 200.0

#: Telraam modes and loop vehicle classes the demo produces.
MODES = ("pedestrian", "bike", "car", "heavy")
#: MIV klasse_id → share of the traffic on a Flemish motorway lane.
CLASS_SHARES = {"1": 0.01, "2": 0.78, "3": 0.10, "4": 0.05, "5": 0.06}


def local_hour(moment: datetime) -> float:
    """Hour of the day in Brussels as a fraction (7.5 is half past seven)."""
    local = moment.astimezone(BRUSSELS)
    return local.hour + local.minute / 60 + local.second / 3600


def is_weekend(moment: datetime) -> bool:
    """Saturday or Sunday in Brussels."""
    return moment.astimezone(BRUSSELS).weekday() >= 5


def bell(hour: float, centre: float, width: float) -> float:
    """A bell curve of the hour: 1 at `centre`, about 0.6 at `width` hours from it."""
    return math.exp(-((hour - centre) ** 2) / (2 * width**2))


def traffic_demand(
    moment: datetime, mode: str = "car", morning: float = 1.0, evening: float = 1.0
) -> float:
    """Relative demand (about 0.05 at night, about 1 at a weekday rush hour) for a mode.

    Weekdays have rush hours 7-9 and 16-18 (`morning`/`evening` weigh them, for a road into
    town in the morning and out of it in the evening); weekends have no rush but a broad
    afternoon hump, lower for cars and lorries, and a leisure peak for pedestrians and bikes.
    """
    hour = local_hour(moment)
    night = 0.05
    if is_weekend(moment):
        hump = bell(hour, 14.5, 3.2)
        weights = {"pedestrian": 0.75, "bike": 0.6, "car": 0.45, "heavy": 0.12}
        return night + weights.get(mode, 0.45) * hump
    rush = morning * bell(hour, 8.0, 0.75) + evening * bell(hour, 17.0, 0.9)
    day = bell(hour, 12.5, 3.5)
    shapes = {
        # (rush, daytime) weights: commuters ride bikes at rush hour, shoppers walk at noon.
        "pedestrian": (0.45, 0.65),
        "bike": (0.95, 0.35),
        "car": (0.8, 0.45),
        "heavy": (0.3, 0.6),
    }
    rush_weight, day_weight = shapes.get(mode, shapes["car"])
    return night + rush_weight * rush + day_weight * day


def counter_counts(
    moment: datetime, scales: dict[str, float], rng: random.Random
) -> dict[str, tuple[int, int]]:
    """Hourly (left, right) counts per Telraam mode; `scales` are a weekday rush-hour hour."""
    counts: dict[str, tuple[int, int]] = {}
    for mode in MODES:
        expected = scales.get(mode, 0.0) * traffic_demand(moment, mode)
        left_share = rng.uniform(0.4, 0.6)
        total = max(0.0, rng.gauss(expected, math.sqrt(expected + 1)))
        counts[mode] = (round(total * left_share), round(total * (1 - left_share)))
    return counts


def episode_strength(moment: datetime) -> float:
    """0..1 strength of a pollution episode (still, cold evenings with wood burning).

    Every other day (by local date) builds an evening episode from 17 h that peaks at
    22 h and clears by the next morning; other days have none.
    """
    local = moment.astimezone(BRUSSELS)
    hour = local_hour(moment)
    today = local.toordinal() % 2 == 0
    yesterday = (local.toordinal() - 1) % 2 == 0
    evening = bell(hour, 22.0, 2.5) if today and hour >= 15 else 0.0
    overnight = bell(hour + 24, 22.0, 2.5) if yesterday and hour < 9 else 0.0
    return max(evening, overnight)


@dataclass(frozen=True, slots=True)
class AirSample:
    """One air-quality sample in µg/m³."""

    pm25: float
    pm10: float
    no2: float


def air_quality(moment: datetime, rng: random.Random, traffic_exposure: float = 1.0) -> AirSample:
    """PM2.5, PM10 and NO2 at a station; `traffic_exposure` is 0 (park) to 2 (street canyon).

    Background PM is higher at night and in the morning (a shallow boundary layer), traffic
    adds PM and most of the NO2 at rush hours, and episodes push PM10 well above its daily
    limit and NO2 above its hourly limit at busy streets.
    """
    hour = local_hour(moment)
    inversion = 0.5 * bell(hour, 7.0, 2.5) + 0.4 * bell(hour, 23.0, 3.0)
    traffic = traffic_demand(moment, "car") * traffic_exposure
    episode = episode_strength(moment)
    pm25 = 7.0 * (1 + inversion) + 4.0 * traffic + 55.0 * episode
    pm25 = max(1.0, pm25 * rng.lognormvariate(0, 0.12))
    coarse = 1.45 + 0.15 * traffic_exposure
    pm10 = pm25 * coarse * rng.uniform(0.95, 1.05)
    no2 = 12.0 + 55.0 * traffic + 120.0 * episode * (0.5 + traffic_exposure)
    no2 = max(1.0, no2 * rng.lognormvariate(0, 0.1))
    return AirSample(round(pm25, 1), round(pm10, 1), round(no2, 1))


@dataclass(frozen=True, slots=True)
class LaneMinute:
    """One minute of one motorway lane, as a double-loop detector measures it."""

    counts: dict[str, int]
    speeds: dict[str, float]
    occupancy: float
    congested: bool


def lane_minute(
    moment: datetime,
    rng: random.Random,
    *,
    morning: float = 1.0,
    evening: float = 1.0,
    capacity: float = 33.0,
    free_speed: float = 118.0,
) -> LaneMinute:
    """Counts and speeds per vehicle class, occupancy in percent, and whether it is congested.

    Demand at a weekday peak exceeds the lane's capacity (vehicles a minute): the flow then
    breaks down to 60-80 % of capacity at walking-pace-to-40 km/h speeds and high occupancy.
    """
    demand = 40.0 * traffic_demand(moment, "car", morning, evening) * rng.uniform(0.9, 1.1)
    congested = demand > capacity * 0.92
    if congested:
        flow = capacity * rng.uniform(0.6, 0.8)
        speed = rng.uniform(12.0, 40.0)
        occupancy = rng.uniform(30.0, 60.0)
    else:
        flow = max(0.0, rng.gauss(demand, math.sqrt(demand + 0.5)))
        speed = free_speed - 20.0 * demand / capacity + rng.gauss(0, 3)
        occupancy = min(25.0, flow * 0.45 + rng.uniform(0, 1.5))
    counts: dict[str, int] = {}
    speeds: dict[str, float] = {}
    for klasse, share in CLASS_SHARES.items():
        count = int(round(flow * share * rng.uniform(0.8, 1.2)))
        counts[klasse] = count
        # Lorries keep to 90 km/h in free flow; in a jam everyone crawls alike.
        limit = 90.0 if klasse in ("4", "5") and not congested else None
        class_speed = min(speed, limit) if limit else speed
        speeds[klasse] = round(max(5.0, class_speed + rng.gauss(0, 2)), 1) if count else 0.0
    return LaneMinute(counts, speeds, round(occupancy, 1), congested)


def car_speed_v85(moment: datetime, rng: random.Random, limit: float = 50.0) -> float:
    """85th percentile car speed on a town street: near the limit, lower in busy hours."""
    slowdown = 12.0 * min(1.0, traffic_demand(moment, "car"))
    return round(limit - slowdown + rng.uniform(-3, 3), 1)


def temperature(moment: datetime, rng: random.Random) -> float:
    """Air temperature in °C: a mild Flemish day, warmest mid-afternoon."""
    return 9.0 + 5.0 * bell(local_hour(moment), 15.0, 4.0) + rng.gauss(0, 0.4)
