"""`stadspuls backfill FILE`: import history into `observations` (docs/temporal.md).

Two formats, told apart by the file name (`.csv`, else JSON):
- CSV with a header row naming the columns, in any order: `entity_id`, `entity_type`,
  `attribute`, `observed_at`, `value` (required) and `unit_code`, `dataset_id` (optional,
  may be empty). `observed_at` is ISO 8601 (UTC when it has no offset). `value` is read as
  JSON when it is JSON (`12.5`, `true`, `{"a": 1}`, `"12"`), else as the text it is, so
  `ok` is the string "ok". Types and attributes are short names expanded as ingest expands
  them (the Smart Data Models context of the entity type), or full IRIs.
- JSON: an array of temporal entities in the NGSI-LD temporal representation (clause
  4.5.9: per attribute an array of instances, each with observedAt). An entity carrying
  `@context` is expanded with it; without one, as CSV names are.

The whole file is checked first; every invalid line (CSV) or entity (JSON, by the line it
starts on) is reported, and nothing is written from a file with errors unless
`--skip-invalid`. Then the instances are written in batches, each in one transaction
through storage/temporal_writes.py (so rollups are kept, `rollup_pending`), and the newest
instance of each attribute also goes into the entity's latest state in `entities` (created
when absent; never replacing a newer value), as the temporal API's writes do.
"""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import orjson
import psycopg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ngsi.context import ContextResolver
from ngsi.entity_input import AttributeReader, check_name, is_uri
from ngsi.errors import NgsiError
from ngsi.temporal_input import TemporalFragment, read_temporal_entity
from ngsi.temporal_params import parse_datetime
from ngsi.vocabulary import IngestVocabulary
from storage.entity_store import EntityStore
from storage.temporal_writes import ensure_partitions, insert_instances, merge_latest_state

from .settings import Settings
from .wiring import prepare_database

REQUIRED_COLUMNS = ("entity_id", "entity_type", "attribute", "observed_at", "value")
OPTIONAL_COLUMNS = ("unit_code", "dataset_id")
#: Invalid lines shown; the rest are counted.
SHOWN_PROBLEMS = 50
console = Console()
errors = Console(stderr=True)

#: (line number, the fragment of that line or entity, or what is wrong with it)
Parsed = tuple[int, TemporalFragment | str]


def csv_value(text: str) -> Any:
    """A CSV value: JSON when it parses as JSON, else the text itself."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text


def csv_line(
    record: dict[str, str], tenant: str, vocabulary: IngestVocabulary, reader: AttributeReader
) -> TemporalFragment:
    """One CSV record as a one-instance fragment; NgsiError or ValueError when invalid."""
    entity_id = record["entity_id"].strip()
    if not is_uri(entity_id):
        raise ValueError(f"entity_id must be a URI, not {entity_id!r}")
    short_type = check_name(record["entity_type"].strip(), "entity_type")
    name = check_name(record["attribute"].strip(), "attribute")
    observed = parse_datetime(record["observed_at"], "observed_at")
    text = record["value"]
    if text is None or text.strip() == "":
        raise ValueError("value is empty")
    value = csv_value(text.strip())
    if value is None:
        raise ValueError("value is null")
    raw: dict[str, Any] = {"value": value, "observedAt": observed.isoformat()}
    if (record.get("unit_code") or "").strip():
        raw["unitCode"] = record["unit_code"].strip()
    if (record.get("dataset_id") or "").strip():
        raw["datasetId"] = record["dataset_id"].strip()
    fragment = TemporalFragment(entity_id, [vocabulary.entity_type(short_type)])
    instance = reader.instance(name, raw, 0)
    fragment.add(tenant, vocabulary.attribute(short_type, name), instance, name)
    return fragment


def read_csv(path: Path, tenant: str) -> Iterator[Parsed]:
    """Every record of a CSV file, parsed, with its line number."""
    vocabulary, reader = IngestVocabulary(), AttributeReader(str)
    with path.open(newline="", encoding="utf-8-sig") as handle:
        rows = csv.DictReader(handle)
        header = [column.strip() for column in rows.fieldnames or []]
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        unknown = [c for c in header if c not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
        if missing or unknown:
            wanted = f"{', '.join(REQUIRED_COLUMNS)} (and optionally {', '.join(OPTIONAL_COLUMNS)})"
            yield (
                1,
                f"the header must name the columns {wanted}; missing {missing}, unknown {unknown}",
            )
            return
        rows.fieldnames = header
        for record in rows:
            line = rows.line_num
            if None in record or any(record.get(c) is None for c in REQUIRED_COLUMNS):
                yield line, f"expected {len(header)} columns"
                continue
            try:
                yield line, csv_line(record, tenant, vocabulary, reader)
            except (NgsiError, ValueError) as error:
                yield line, str(error)


def json_items(text: str) -> Iterator[tuple[int, Any]]:
    """The elements of a top-level JSON array with the line each starts on."""
    decoder = json.JSONDecoder()
    position = _skip(text, 0)
    if not text.startswith("[", position):
        raise ValueError("a JSON backfill file is an array of temporal entities")
    position = _skip(text, position + 1)
    if text.startswith("]", position):
        return
    while True:
        item, end = decoder.raw_decode(text, position)
        yield text.count("\n", 0, position) + 1, item
        position = _skip(text, end)
        if text.startswith("]", position):
            return
        if not text.startswith(",", position):
            line = text.count("\n", 0, position) + 1
            raise ValueError(f"line {line}: expected ',' or ']' between entities")
        position = _skip(text, position + 1)


def _skip(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position


async def read_json(path: Path, tenant: str, resolver: ContextResolver) -> list[Parsed]:
    """Every temporal entity of a JSON file, parsed, with the line it starts on."""
    vocabulary = IngestVocabulary()
    parsed: list[Parsed] = []
    try:
        items = list(json_items(path.read_text(encoding="utf-8")))
    except json.JSONDecodeError as error:
        return [(error.lineno, f"not valid JSON: {error.msg}")]
    except ValueError as error:
        return [(1, str(error))]
    for line, body in items:
        try:
            parsed.append((line, await _entity(body, tenant, vocabulary, resolver)))
        except NgsiError as error:
            parsed.append((line, error.detail))
    return parsed


async def _entity(
    body: Any, tenant: str, vocabulary: IngestVocabulary, resolver: ContextResolver
) -> TemporalFragment:
    if isinstance(body, dict) and "@context" in body:
        context = await resolver.resolve(body["@context"])
        return read_temporal_entity(body, context.expand, tenant)
    raw_type = body.get("type") if isinstance(body, dict) else None
    short = raw_type[0] if isinstance(raw_type, list) and raw_type else raw_type
    short = short if isinstance(short, str) else ""

    def attribute(term: str) -> str:
        return vocabulary.attribute(short, term)

    return read_temporal_entity(body, attribute, tenant, expand_type=vocabulary.entity_type)


async def write_all(
    url: str,
    tenant: str,
    parsed: Callable[[], Iterator[Parsed]],
    total: int,
    batch_size: int,
) -> tuple[int, int]:
    """Write every valid fragment in batches of about `batch_size` rows; (rows, entities)."""
    written, entities = 0, set[str]()
    columns = (
        TextColumn("[bold]backfill"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
    )
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        async with conn.transaction():
            await EntityStore(conn).ensure_tenant(tenant)
        with Progress(*columns, console=console) as progress:
            task = progress.add_task("instances", total=total)
            batch: dict[str, TemporalFragment] = {}
            size = 0
            for _, item in parsed():
                if isinstance(item, str):
                    continue
                held = batch.get(item.entity_id)
                if held is None:
                    batch[item.entity_id] = item
                else:
                    held.absorb(item)
                size += len(item.rows)
                if size >= batch_size:
                    written += await _write_batch(conn, tenant, batch)
                    entities.update(batch)
                    progress.advance(task, size)
                    batch, size = {}, 0
            if batch:
                written += await _write_batch(conn, tenant, batch)
                entities.update(batch)
                progress.advance(task, size)
    return written, len(entities)


async def _write_batch(
    conn: psycopg.AsyncConnection[Any], tenant: str, batch: dict[str, TemporalFragment]
) -> int:
    rows = [row for fragment in batch.values() for row in fragment.rows]
    await ensure_partitions(conn, rows)
    async with conn.transaction():
        count = await insert_instances(conn, tenant, rows)
        store = EntityStore(conn)
        for entity_id in sorted(batch):  # id order: the order ingest locks entities in
            await merge_latest_state(store, tenant, batch[entity_id], create=True)
    return count


def report(problems: list[tuple[int, str]]) -> None:
    """Print invalid lines, the first SHOWN_PROBLEMS of them."""
    for line, message in problems[:SHOWN_PROBLEMS]:
        errors.print(f"line {line}: {message}", markup=False, highlight=False)
    if len(problems) > SHOWN_PROBLEMS:
        errors.print(f"... and {len(problems) - SHOWN_PROBLEMS} more invalid lines")


def backfill_command(
    path: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="CSV or JSON file.")],
    tenant: str = typer.Option("", help="The tenant (NGSILD-Tenant); default tenant if omitted."),
    skip_invalid: bool = typer.Option(
        False, "--skip-invalid", help="Write the valid lines of a file with invalid ones."
    ),
    batch_size: int = typer.Option(5000, min=1, help="Instances per transaction."),
) -> None:
    """Import history from a CSV or NGSI-LD temporal JSON file (docs/temporal.md)."""
    settings = Settings()
    if path.suffix.lower() == ".csv":

        def parsed() -> Iterator[Parsed]:
            return read_csv(path, tenant)

    else:
        resolver = ContextResolver(fetch_timeout=settings.context_fetch_timeout)
        entities = asyncio.run(read_json(path, tenant, resolver))

        def parsed() -> Iterator[Parsed]:
            return iter(entities)

    problems: list[tuple[int, str]] = []
    total = 0
    for line, item in parsed():
        if isinstance(item, str):
            problems.append((line, item))
        else:
            total += len(item.rows)
    if problems:
        report(problems)
        if not skip_invalid:
            errors.print(f"{path}: {len(problems)} invalid lines; nothing written")
            raise typer.Exit(1)
    prepare_database(settings)
    written, count = asyncio.run(
        write_all(settings.database_url, tenant, parsed, total, batch_size)
    )
    skipped = f", skipped {len(problems)} invalid lines" if problems else ""
    console.print(
        f"backfilled {written:,} instances of {count:,} entities into tenant"
        f" {tenant or '(default)'}{skipped}"
    )
