"""The flat table every rollup read answers with (storage/rollup_reads.py,
storage/hour_packs.py): many series' summaries in one set of numpy arrays, and how series
found by their positions in a request are numbered."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # storage.temporal_series imports storage.rollups, which imports this
    from storage.temporal_series import SeriesKey


@dataclass(frozen=True, slots=True)
class RollupTable:
    """Rollups of many series in flat arrays, sorted by series then bucket (NaN where a
    bucket has no number): row i belongs to `keys[series[i]]`. A bucket is a UTC hour, or
    a local day of the daily rollups' zone where the reader asked for days."""

    keys: list[SeriesKey]
    series: np.ndarray  # int64, index into keys
    buckets: np.ndarray  # datetime64[us], the start of each hour (or day)
    observation_counts: np.ndarray  # int64, every instance
    value_counts: np.ndarray  # int64, the numeric ones, which the rest summarize
    sums: np.ndarray
    sum_squares: np.ndarray
    mins: np.ndarray
    maxs: np.ndarray


#: The float columns in RollupTable order, and the methods that need each: a column no
#: requested method needs is not collected (NULL, zeros in numpy).
FLOAT_COLUMNS = {
    "total": frozenset({"sum", "avg", "stddev"}),
    "squares": frozenset({"sumsq", "stddev"}),
    "lowest": frozenset({"min"}),
    "highest": frozenset({"max"}),
}
ALL_FLOATS = frozenset(FLOAT_COLUMNS)


def float_columns(methods: Iterable[str]) -> frozenset[str]:
    """The float columns the rollup-servable `methods` need."""
    wanted = set(methods)
    return frozenset(name for name, needs in FLOAT_COLUMNS.items() if needs & wanted)


def number_series(
    entity_ids: Sequence[str],
    attributes: Sequence[str],
    entity_at: np.ndarray,
    attribute_at: np.ndarray,
    has_dataset: np.ndarray,
    datasets: list[str] | None,
) -> tuple[list[SeriesKey], np.ndarray]:
    """Series keys, sorted, and each bucket's series number, from the buckets' positions
    (1-based) in the requested lists and their datasetIds where not the default."""
    names = sorted(set(datasets or ()))
    dataset_codes = np.zeros(len(entity_at), dtype=np.int64)
    if names:
        code_of = {name: code for code, name in enumerate(names, start=1)}
        dataset_codes[has_dataset] = [code_of[name] for name in datasets or ()]
    codes = ((entity_at - 1) * len(attributes) + attribute_at - 1) * (len(names) + 1)
    found, series = np.unique(codes + dataset_codes, return_inverse=True)
    dataset_names = ["", *names]
    per_entity = len(attributes) * len(dataset_names)
    keys = [
        (entity_ids[code // per_entity],
         attributes[code % per_entity // len(dataset_names)],
         dataset_names[code % len(dataset_names)])
        for code in found.tolist()
    ]  # fmt: skip
    order = sorted(range(len(keys)), key=keys.__getitem__)
    rank = np.empty(len(keys), dtype=np.int64)
    rank[order] = np.arange(len(keys))
    return [keys[index] for index in order], rank[series]


def sorted_table(
    keys: list[SeriesKey], series: np.ndarray, columns: list[np.ndarray | None]
) -> RollupTable:
    """The table with its rows sorted by series number, then bucket (columns[0])."""
    buckets = columns[0]
    assert buckets is not None
    order = np.lexsort((buckets, series))
    sorted_columns = [
        column[order] if column is not None else np.zeros(len(order)) for column in columns
    ]
    return RollupTable(keys, series[order], *sorted_columns)


_NO_TIMES = np.empty(0, dtype="datetime64[us]")
_NO_COUNTS = np.empty(0, dtype=np.int64)
EMPTY = RollupTable([], _NO_COUNTS, _NO_TIMES, _NO_COUNTS, _NO_COUNTS,
                     *(np.empty(0) for _ in range(4)))  # fmt: skip
