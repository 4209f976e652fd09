"""q evaluation on stored entities (ngsi/qeval.py): expression × entity → expected match.

CASES is also run against PostgreSQL by tests/integration/test_qsql.py, which must agree.
"""

from __future__ import annotations

from typing import Any

import pytest

from ngsi.qeval import evaluate
from ngsi.qlang import parse_q

BASE = "https://example.org/"


def expand(term: str) -> str:
    """Every term in the tests' own vocabulary."""
    return BASE + term


def entity(**attributes: Any) -> dict[str, Any]:
    """Stored form: attribute names expanded."""
    return {expand(name): value for name, value in attributes.items()}


def prop(value: Any, **members: Any) -> dict[str, Any]:
    """A Property instance; keyword members other than the core ones are sub-attributes."""
    instance = {"type": "Property", "value": value}
    for name, member in members.items():
        core = name in ("observedAt", "unitCode", "datasetId", "createdAt", "modifiedAt")
        instance[name if core else expand(name)] = member
    return instance


def rel(target: Any) -> dict[str, Any]:
    return {"type": "Relationship", "object": target}


def typed(kind: str, text: str | list[str]) -> dict[str, str | list[str]]:
    return {"@type": kind, "@value": text}


TEMPERATURE = entity(temperature=prop(21.5, observedAt="2024-01-01T10:00:00Z", unitCode="CEL"))
INSTANCES = entity(
    temperature=[
        prop(19, datasetId="urn:ngsi-ld:Dataset:a"),
        prop(25, datasetId="urn:ngsi-ld:Dataset:b", observedAt="2024-01-01T10:00:00.5Z"),
    ]
)
NAME = entity(
    name={"type": "LanguageProperty", "languageMap": {"en": "Berlin", "de": ["Berl", "B"]}}
)
ADDRESS = entity(address=prop({"city": "Berlin", "zip": [1000, 2000], "geo": {"x": 1}}))
SENSOR = entity(sensor=prop(40, rawdata=prop({"airquality": {"particulate": 40}})))
TAGS = entity(tags=prop(["red", "blue", ["green"]]))

CASES: list[tuple[str, dict[str, Any], bool]] = [
    # numbers, and values of another kind
    ("temperature==21.5", TEMPERATURE, True),
    ("temperature==21.50", TEMPERATURE, True),
    ("temperature==21", TEMPERATURE, False),
    ("temperature>20", TEMPERATURE, True),
    ("temperature>=21.5", TEMPERATURE, True),
    ("temperature<21.5", TEMPERATURE, False),
    ("temperature<=2.15e1", TEMPERATURE, True),
    ('temperature=="21.5"', TEMPERATURE, False),
    ('temperature!="21.5"', TEMPERATURE, True),
    ('temperature>"a"', TEMPERATURE, False),
    ("temperature==100", entity(temperature=prop(100.0)), True),
    ("temperature==1e2", entity(temperature=prop(100)), True),
    ("t==0.30000000000000004", entity(t=prop(0.1 + 0.2)), True),
    ("t>0.3", entity(t=prop(0.3)), False),
    ("t==0.1", entity(t=prop(0.1)), True),
    ("t==-0", entity(t=prop(0)), True),
    ("t==1", entity(t=prop(True)), False),
    ('t=="x"', entity(t=prop(None)), False),
    ('t!="x"', entity(t=prop(None)), True),
    ("t==12345678901234567890", entity(t=prop(12345678901234567890)), True),
    ("t==12345678901234567891", entity(t=prop(12345678901234567890)), False),
    # a missing attribute matches nothing, `!=` included (the target must exist)
    ("humidity==5", TEMPERATURE, False),
    ("humidity!=5", TEMPERATURE, False),
    ("humidity<5", TEMPERATURE, False),
    ("humidity", TEMPERATURE, False),
    ("temperature", TEMPERATURE, True),
    ("t", entity(t=None), True),
    # several instances: any instance
    ("temperature>20", INSTANCES, True),
    ("temperature<20", INSTANCES, True),
    ("temperature==25", INSTANCES, True),
    ("temperature!=25", INSTANCES, True),
    ("temperature!=19,25", INSTANCES, False),
    ("temperature==20..24", INSTANCES, False),
    ("temperature.datasetId==urn:ngsi-ld:Dataset:b", INSTANCES, True),
    ("temperature.observedAt", INSTANCES, True),
    ("temperature.observedAt<2024-01-01T10:00:00.6Z", INSTANCES, True),
    ("temperature.observedAt<2024-01-01T10:00:00.5Z", INSTANCES, False),
    # array values: includes / does not include
    ('tags=="red"', TAGS, True),
    ('tags!="red"', TAGS, False),
    ('tags!="green"', TAGS, True),
    ('tags=="green"', TAGS, False),
    ('tags=="pink","blue"', TAGS, True),
    ('tags!="pink","blue"', TAGS, False),
    ('tags>"q"', TAGS, True),
    ('tags!="x"', entity(tags=prop([])), True),
    ('tags=="x"', entity(tags=prop([])), False),
    # ranges (inclusive) and value lists
    ("t==20..22", entity(t=prop(21)), True),
    ("t==20..22", entity(t=prop(20)), True),
    ("t==20..22", entity(t=prop(22)), True),
    ("t==20..22", entity(t=prop(23)), False),
    ("t!=20..22", entity(t=prop(23)), True),
    ("t!=20..22", entity(t=prop(21)), False),
    ("t!=20..22", entity(t=prop("x")), True),
    ('t=="a".."c"', entity(t=prop("b")), True),
    ('t=="a".."c"', entity(t=prop("cc")), False),
    ('color=="black","red"', entity(color=prop("red")), True),
    ('color!="black","red"', entity(color=prop("blue")), True),
    ('color!="black","red"', entity(color=prop("red")), False),
    ("color==1,true", entity(color=prop(True)), True),
    # booleans
    ("a==true", entity(a=prop(True)), True),
    ("a==true", entity(a=prop(1)), False),
    ("a!=true", entity(a=prop(False)), True),
    # strings compare by code point
    ('name>"A"', entity(name=prop("Zebra")), True),
    ('name<"a"', entity(name=prop("Zebra")), True),
    ('name>"z"', entity(name=prop("é")), True),
    ('name=="Zebra"', entity(name=prop("zebra")), False),
    # relationships: object, `==`/`!=` only
    ("isParked==urn:ngsi-ld:Park:1", entity(isParked=rel("urn:ngsi-ld:Park:1")), True),
    ('isParked=="urn:ngsi-ld:Park:1"', entity(isParked=rel("urn:ngsi-ld:Park:1")), True),
    ("isParked!=urn:ngsi-ld:Park:2", entity(isParked=rel("urn:ngsi-ld:Park:1")), True),
    ("isParked!=urn:ngsi-ld:Park:1", entity(isParked=rel("urn:ngsi-ld:Park:1")), False),
    ('isParked>"a"', entity(isParked=rel("urn:ngsi-ld:Park:1")), False),
    ("isParked~=Park", entity(isParked=rel("urn:ngsi-ld:Park:1")), False),
    ("isParked!~=Zoo", entity(isParked=rel("urn:ngsi-ld:Park:1")), False),
    ("r==urn:x:2", entity(r=rel(["urn:x:1", "urn:x:2"])), True),
    ("r==urn:x:2", entity(r={"type": "Property", "value": "urn:x:1", "object": "urn:x:2"}), False),
    (
        "r==urn:x:2",
        entity(
            r={
                "type": "ListRelationship",
                "objectList": [{"object": "urn:x:1"}, {"object": "urn:x:2"}],
            }
        ),
        True,
    ),
    # LanguageProperty: any language, or the one in brackets
    ('name=="Berlin"', NAME, True),
    ('name=="Berl"', NAME, True),
    ('name[de]=="Berl"', NAME, True),
    ('name[de]=="Berlin"', NAME, False),
    ('name[fr]=="Berlin"', NAME, False),
    ('name[*]=="B"', NAME, True),
    ("name[en]", NAME, True),
    ("name[fr]", NAME, False),
    ('name!="Paris"', NAME, True),
    ('name!="Berlin"', NAME, False),
    ("name~=^Ber", NAME, True),
    # VocabProperty, JsonProperty, ListProperty, GeoProperty
    (
        "category==urn:x:Male",
        entity(category={"type": "VocabProperty", "vocab": "urn:x:Male"}),
        True,
    ),
    (
        'tickets[value]=="Overstay"',
        entity(tickets={"type": "JsonProperty", "json": {"id": "1", "value": "Overstay"}}),
        True,
    ),
    ("list==2", entity(list={"type": "ListProperty", "valueList": [1, 2, 3]}), True),
    ("list==4", entity(list={"type": "ListProperty", "valueList": [1, 2, 3]}), False),
    (
        'location[type]=="Point"',
        entity(
            location={"type": "GeoProperty", "value": {"type": "Point", "coordinates": [4.4, 51.2]}}
        ),
        True,
    ),
    # compound values
    ('address[city]=="Berlin"', ADDRESS, True),
    ('address[city]!="Paris"', ADDRESS, True),
    ('address[street]!="Paris"', ADDRESS, False),
    ("address[street]", ADDRESS, False),
    ("address[city]", ADDRESS, True),
    ("address[zip]==2000", ADDRESS, True),
    ("address[geo.x]==1", ADDRESS, True),
    ("address[geo][x]==1", ADDRESS, True),
    ("address[*]==2000", ADDRESS, True),
    ('address=="Berlin"', ADDRESS, False),
    ('address!="Berlin"', ADDRESS, True),
    # sub-attributes
    ("sensor.rawdata[airquality.particulate]==40", SENSOR, True),
    ("sensor.rawdata[airquality.particulate]>40", SENSOR, False),
    ("sensor.rawdata", SENSOR, True),
    ("sensor.accuracy", SENSOR, False),
    ("sensor==40", SENSOR, True),
    ("sensor.rawdata==40", SENSOR, False),
    ("temperature.unitCode", SENSOR, False),
    # meta members
    ('temperature.unitCode=="CEL"', TEMPERATURE, True),
    ("temperature.unitCode~=^C", TEMPERATURE, True),
    ("temperature.observedAt>=2024-01-01T00:00:00Z", TEMPERATURE, True),
    ("temperature.observedAt==2024-01-01T11:00:00+01:00", TEMPERATURE, True),
    ('temperature.observedAt=="2024-01-01T10:00:00Z"', TEMPERATURE, True),
    ("temperature.observedAt==2024-01-01", TEMPERATURE, False),
    ("temperature.createdAt", TEMPERATURE, False),
    ("temperature.observedAt", TEMPERATURE, True),
    # DateTime / Date / Time: typed values and strings in the stored UTC form
    (
        "when>2020-01-01T00:00:00Z",
        entity(when=prop(typed("DateTime", "2020-05-01T00:00:00Z"))),
        True,
    ),
    ("when>2020-01-01T00:00:00Z", entity(when=prop("2020-05-01T00:00:00Z")), True),
    ("when>2020-01-01T00:00:00Z", entity(when=prop("2020-05-01T00:00:00+02:00")), False),
    ("when>2020-01-01T00:00:00Z", entity(when=prop("2020-05-01")), False),
    ("when==2020-05-01T00:00:00Z", entity(when=prop("2020-05-01T00:00:00.000Z")), True),
    (
        "when==2020-05-01T02:00:00+02:00",
        entity(when=prop(typed("DateTime", "2020-05-01T00:00:00Z"))),
        True,
    ),
    (
        'when=="2020-05-01T00:00:00Z"',
        entity(when=prop(typed("DateTime", "2020-05-01T00:00:00Z"))),
        False,
    ),
    (
        'when!="2020-05-01T00:00:00Z"',
        entity(when=prop(typed("DateTime", "2020-05-01T00:00:00Z"))),
        True,
    ),
    ("when>2020-01-01T00:00:00Z", entity(when=prop(typed("Date", "2020-05-01"))), False),
    (
        "when>2020-01-01T00:00:00Z",
        entity(when=prop(typed("DateTime", "2019-02-29T00:00:00Z"))),
        False,
    ),
    (
        "when!=2020-01-01T00:00:00Z",
        entity(when=prop(typed("DateTime", "2019-02-29T00:00:00Z"))),
        True,
    ),
    ("when<2020-01-01T00:00:00Z", entity(when=prop("0000-05-01T00:00:00Z")), False),
    (
        "when<2020-01-01T00:00:00Z",
        entity(when=prop(typed("DateTime", ["2019-05-01T00:00:00Z"]))),
        True,
    ),
    (
        "when<2020-01-01T00:00:00Z",
        entity(when=prop({"@type": ["DateTime"], "@value": "2019-05-01T00:00:00Z"})),
        True,
    ),
    (
        "when==2020-01-01T00:00:00Z..2020-12-31T23:59:59.999999Z",
        entity(when=prop(typed("DateTime", "2020-05-01T00:00:00.5Z"))),
        True,
    ),
    ("day==2020-05-01", entity(day=prop(typed("Date", "2020-05-01"))), True),
    ("day<2020-05-01", entity(day=prop("2020-04-30")), True),
    ("day==2020-05-01", entity(day=prop(typed("DateTime", "2020-05-01T00:00:00Z"))), False),
    ("at>12:00:00Z", entity(at=prop(typed("Time", "12:00:00.25Z"))), True),
    ("at>12:00:00.25Z", entity(at=prop("12:00:00.25Z")), False),
    ("at==12:00:00Z", entity(at=prop("12:00:00")), False),
    # regular expressions: a search, on strings only; `.` is not a newline
    ("name~=^Ber", entity(name=prop("Berlin")), True),
    ("name~=lin$", entity(name=prop("Berlin")), True),
    ("name~=erl", entity(name=prop("Berlin")), True),
    ("name~=berlin", entity(name=prop("Berlin")), False),
    ("name~=(?i)berlin", entity(name=prop("Berlin")), True),
    ("name~=(?i)[^b]erlin", entity(name=prop("Berlin")), False),
    ("name~=(?i)é", entity(name=prop("É")), False),
    ("name!~=^Par", entity(name=prop("Berlin")), True),
    ("name!~=^Ber", entity(name=prop("Berlin")), False),
    ("name~=4", entity(name=prop(40)), False),
    ("name!~=x", entity(name=prop(40)), False),
    ("name!~=x", entity(name=prop(["ax", "b"])), False),
    ("name!~=x", entity(name=prop(["a", "b"])), True),
    ("name~=^a.c$", entity(name=prop("abc")), True),
    ("name~=^a.c$", entity(name=prop("a\nc")), False),
    ("name~=^a[^b]c$", entity(name=prop("a\nc")), True),
    ("name~=^a\\sc$", entity(name=prop("a\nc")), True),
    ("name~=b$", entity(name=prop("ab\n")), False),
    ("name~=^b", entity(name=prop("a\nb")), False),
    ("name~=\\d{2,3}", entity(name=prop("a12")), True),
    ("name~=^\\d{2,3}$", entity(name=prop("1234")), False),
    ('name~="a|^c"', entity(name=prop("bc")), False),
    ("name~=(foo|bar)+baz", entity(name=prop("xbarfoobaz")), True),
    ("name~=^(a*)*$", entity(name=prop("a" * 40 + "b")), False),
    ("name~=^(a|aa)+$", entity(name=prop("a" * 60)), True),
    ("name~=😀", entity(name=prop("x😀y")), True),
    ('name~=""', entity(name=prop("")), True),
    ("name~=x?", entity(name=prop(5)), False),
    ("name~=\\.", entity(name=prop("a.b")), True),
    ("name~=[.]", entity(name=prop("ab")), False),
    # AND, OR, nesting
    ("temperature>20;temperature<22", TEMPERATURE, True),
    ("temperature>20;humidity", TEMPERATURE, False),
    ("humidity|temperature>20", TEMPERATURE, True),
    ("(humidity|temperature>30);temperature", TEMPERATURE, False),
    ("humidity|temperature>30;temperature|temperature==21.5", TEMPERATURE, True),
]


@pytest.mark.parametrize(("text", "attributes", "expected"), CASES)
def test_expression_on_entity(text: str, attributes: dict[str, Any], expected: bool) -> None:
    assert evaluate(parse_q(text), attributes, expand) is expected


def test_terms_are_expanded_by_the_callers_function() -> None:
    stored = {"urn:vocab:temp": {"type": "Property", "value": 5}}
    assert evaluate(parse_q("temp==5"), stored, {"temp": "urn:vocab:temp"}.__getitem__)
    assert not evaluate(parse_q("temp==5"), stored, lambda term: term)
