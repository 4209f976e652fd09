"""Validating DATEX II v3.1 documents against the official XSDs in shared/reference.

The schema is DATEXII_3_D2Payload.xsd, which imports the others by relative path; lxml loads
them from disk only: the parser refuses network access and a resolver fails any import that
is not a local file, so a schema change that pulls in a remote document fails loudly.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from lxml import etree

SCHEMA_DIRECTORY = Path(__file__).resolve().parents[3] / "shared" / "reference" / "datex2-v3.1"
PAYLOAD_SCHEMA = SCHEMA_DIRECTORY / "DATEXII_3_D2Payload.xsd"
#: Every schema file the resolver handed to libxml2 (a test checks they are all local).
LOADED: list[Path] = []


class _LocalOnly(etree.Resolver):
    """Refuses every document that is not a file under the schema directory."""

    def resolve(self, system_url, public_id, context):  # type: ignore[no-untyped-def]
        path = Path(system_url.removeprefix("file://"))
        if "://" in system_url and not system_url.startswith("file://"):
            raise AssertionError(f"the DATEX II schema tried to load {system_url}")
        if not path.is_absolute():
            path = SCHEMA_DIRECTORY / path
        if path.resolve().parent != SCHEMA_DIRECTORY:
            raise AssertionError(f"the DATEX II schema tried to load {system_url}")
        LOADED.append(path.resolve())
        return self.resolve_filename(str(path), context)


@cache
def payload_schema() -> etree.XMLSchema:
    """The DATEX II 3.1 d2:payload schema, loaded from local files only."""
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    parser.resolvers.add(_LocalOnly())
    document = etree.parse(str(PAYLOAD_SCHEMA), parser)
    return etree.XMLSchema(document)


def schema_errors(document: bytes) -> list[str]:
    """The schema violations of a DATEX II document (empty when it is valid)."""
    schema = payload_schema()
    parser = etree.XMLParser(no_network=True, resolve_entities=False)
    tree = etree.fromstring(document, parser)
    if schema.validate(tree):
        return []
    return [f"line {error.line}: {error.message}" for error in schema.error_log]


def assert_valid(document: bytes) -> None:
    """Fail with the schema's messages unless `document` is valid DATEX II 3.1."""
    errors = schema_errors(document)
    assert not errors, "\n".join(errors[:20])
