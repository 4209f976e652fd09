"""Instants as integer microseconds since the Unix epoch (UTC), the unit of the alert hot path.

Readings carry `observed_at` as numpy datetime64[us] in UTC; the evaluator works on its int64
view. These helpers convert at the edges (rule state, transitions) to aware UTC datetimes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
MICROSECOND = timedelta(microseconds=1)


def to_microseconds(moment: datetime) -> int:
    """Microseconds since the epoch of `moment`; a naive datetime is taken to be UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - EPOCH) // MICROSECOND


def from_microseconds(microseconds: int) -> datetime:
    """The aware UTC datetime `microseconds` after the epoch."""
    return EPOCH + timedelta(microseconds=int(microseconds))


def duration_microseconds(duration: timedelta) -> int:
    """A timedelta as a whole number of microseconds."""
    return duration // MICROSECOND


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a `Z`, microseconds only when there are any."""
    text = moment.astimezone(UTC).replace(tzinfo=None).isoformat()
    return text + "Z"
