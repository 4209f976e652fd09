"""Pure entity handling: reading request bodies, rendering representations, attribute updates,
the type selection language and @context expansion/compaction."""

from __future__ import annotations

import asyncio

import pytest

from ngsi.context import CORE_CONTEXT_URL, ContextResolver
from ngsi.entity_input import AttributeReader, is_uri, parse_datetime, read_entity
from ngsi.entity_output import Renderer, Representation
from ngsi.entity_update import (
    NGSI_LD_NULL,
    append_attributes,
    delete_attribute,
    merge_entity,
    update_attributes,
)
from ngsi.errors import NgsiError
from ngsi.typeselect import AllOf, AnyOf, TypeName, parse_type_selection
from storage.entity_store import StoredEntity

VOCAB = "https://uri.etsi.org/ngsi-ld/default-context/"
NOW = "2026-11-29T10:00:00.000000Z"
CORE = ContextResolver().core


def expand(term: str) -> str:
    return CORE.expand(term)


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("urn:ngsi-ld:Device:1", True),
        ("https://example.org/a", True),
        ("urn:x", True),
        ("not a uri", False),
        ("relative/path", False),
        ("1urn:x", False),
        ("", False),
        ("urn:", False),
    ],
)
def test_is_uri(text, ok):
    assert is_uri(text) is ok


@pytest.mark.parametrize(
    ("text", "stored"),
    [
        ("2026-11-29T10:00:00Z", "2026-11-29T10:00:00.000000Z"),
        ("2026-11-29T11:00:00+01:00", "2026-11-29T10:00:00.000000Z"),
        ("2026-11-29T10:00:00.5Z", "2026-11-29T10:00:00.500000Z"),
    ],
)
def test_observed_at_is_stored_in_utc(text, stored):
    assert parse_datetime(text, "observedAt") == stored


@pytest.mark.parametrize(
    ("raw", "stored"),
    [
        (5, {"type": "Property", "value": 5}),
        ({"value": 5, "unitCode": "KMH"}, {"type": "Property", "value": 5, "unitCode": "KMH"}),
        ({"object": "urn:x:1"}, {"type": "Relationship", "object": "urn:x:1"}),
        ({"languageMap": {"nl": "a"}}, {"type": "LanguageProperty", "languageMap": {"nl": "a"}}),
        (
            {"type": "Point", "coordinates": [3.7, 51.0]},
            {"type": "GeoProperty", "value": {"type": "Point", "coordinates": [3.7, 51.0]}},
        ),
        (
            {"value": 1, "accuracy": {"value": 0.5}},
            {
                "type": "Property",
                "value": 1,
                VOCAB + "accuracy": {"type": "Property", "value": 0.5},
            },
        ),
    ],
)
def test_concise_and_normalized_attributes_are_read_into_the_stored_form(raw, stored):
    read = AttributeReader(expand, NOW).attribute("a", raw)
    assert _without_system(read) == stored


def _without_system(value):
    if isinstance(value, dict):
        return {
            k: _without_system(v) for k, v in value.items() if k not in ("createdAt", "modifiedAt")
        }
    return value


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"id": "x y", "type": "T"}, "entity id must be a URI"),
        ({"id": "urn:x:1"}, "has no type"),
        ({"id": "urn:x:1", "type": "T", "a": None}, "null value"),
        ({"id": "urn:x:1", "type": "T", "a": {"type": "Property"}}, "needs a non-null 'value'"),
        ({"id": "urn:x:1", "type": "T", "a": {"type": "Bogus", "value": 1}}, "has type 'Bogus'"),
        ({"id": "urn:x:1", "type": "T", "a=b": {"value": 1}}, "forbidden characters"),
        ({"id": "urn:x:1", "type": "T", "a": {"value": 1, "datasetId": "x y"}}, "datasetId"),
        (
            {"id": "urn:x:1", "type": "T", "a": [{"value": 1}, {"value": 2}]},
            "two instances with one datasetId",
        ),
        ({"id": "urn:x:1", "type": "T", "a": {"object": "no uri"}}, "must be a URI"),
        ({"id": "urn:x:1", "type": "T", "scope": "no-slash"}, "scope"),
    ],
)
def test_bad_entities_say_what_is_wrong(body, message):
    with pytest.raises(NgsiError, match=message):
        read_entity(body, expand)


def stored(**attributes) -> StoredEntity:
    return StoredEntity("urn:x:1", [VOCAB + "T"], {VOCAB + k: v for k, v in attributes.items()})


LANE_1 = {"type": "Property", "value": 1, "datasetId": "urn:lane:1", "createdAt": "old"}
LANE_2 = {"type": "Property", "value": 2, "datasetId": "urn:lane:2"}


@pytest.mark.parametrize(
    ("format", "expected"),
    [
        (
            "normalized",
            [
                {"type": "Property", "value": 1, "datasetId": "urn:lane:1"},
                {"type": "Property", "value": 2, "datasetId": "urn:lane:2"},
            ],
        ),
        (
            "concise",
            [{"value": 1, "datasetId": "urn:lane:1"}, {"value": 2, "datasetId": "urn:lane:2"}],
        ),
        ("keyValues", [1, 2]),
    ],
)
def test_multi_instance_attributes_in_each_format(format, expected):
    entity = stored(speed=[LANE_1, LANE_2])
    body = Renderer(CORE, Representation(format=format)).entity(entity)
    assert body == {"id": "urn:x:1", "type": "T", "speed": expected}


def test_append_without_overwrite_keeps_existing_instances():
    entity = stored(speed=[LANE_1])
    incoming = {VOCAB + "speed": [{**LANE_1, "value": 9}, LANE_2]}
    result = append_attributes(entity, incoming, overwrite=False)
    values = {i["datasetId"]: i["value"] for i in entity.attributes[VOCAB + "speed"]}
    assert values == {"urn:lane:1": 1, "urn:lane:2": 2}
    assert result.updated == [VOCAB + "speed"]


def test_update_keeps_created_at_and_reports_missing_instances():
    entity = stored(speed=[LANE_1])
    result = update_attributes(
        entity, {VOCAB + "speed": {**LANE_1, "value": 5, "createdAt": "new"}}
    )
    assert result.updated == [VOCAB + "speed"]
    (instance,) = entity.attributes[VOCAB + "speed"]
    assert (instance["value"], instance["createdAt"]) == (5, "old")
    missing = update_attributes(entity, {VOCAB + "speed": LANE_2, VOCAB + "other": LANE_2})
    assert [name for name, _ in missing.not_updated] == [VOCAB + "speed", VOCAB + "other"]


def test_merge_deletes_with_ngsi_ld_null_and_delete_attribute_by_dataset():
    entity = stored(a={"type": "Property", "value": 1}, speed=[LANE_1, LANE_2])
    merge_entity(entity, {VOCAB + "a": {"type": "Property", "value": NGSI_LD_NULL}})
    assert VOCAB + "a" not in entity.attributes
    delete_attribute(entity, VOCAB + "speed", "speed", "urn:lane:1", False)
    assert entity.attributes[VOCAB + "speed"] == [LANE_2]
    with pytest.raises(NgsiError, match="no instance"):
        delete_attribute(entity, VOCAB + "speed", "speed", "urn:lane:9", False)


@pytest.mark.parametrize(
    ("text", "selection"),
    [
        ("A", TypeName("A")),
        ("A,B", AnyOf((TypeName("A"), TypeName("B")))),
        ("A|B", AnyOf((TypeName("A"), TypeName("B")))),
        ("A;B", AllOf((TypeName("A"), TypeName("B")))),
        ("(A;B)|C", AnyOf((AllOf((TypeName("A"), TypeName("B"))), TypeName("C")))),
    ],
)
def test_type_selection_language(text, selection):
    assert parse_type_selection(text) == selection


@pytest.mark.parametrize("text", ["", "(A", "A;", "A)", ",A", "A B", "()"])
def test_invalid_type_selections(text):
    with pytest.raises(NgsiError):
        parse_type_selection(text)


def test_core_context_expands_unknown_terms_under_the_default_vocabulary():
    assert CORE.expand("location") == "https://uri.etsi.org/ngsi-ld/location"
    assert CORE.expand("speed") == VOCAB + "speed"
    assert CORE.compact(VOCAB + "speed") == "speed"
    assert CORE.expand("urn:ngsi-ld:x") == "urn:ngsi-ld:x"
    assert CORE.link_url == CORE_CONTEXT_URL


def test_user_context_terms_win_and_compact_back():
    context = asyncio.run(ContextResolver().resolve({"speed": "https://example.org/speed"}))
    assert context.expand("speed") == "https://example.org/speed"
    assert context.compact("https://example.org/speed") == "speed"
    assert context.compact("https://uri.etsi.org/ngsi-ld/location") == "location"
