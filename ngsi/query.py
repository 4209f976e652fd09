"""An entity query as the API parameters give it (ETSI GS CIM 009, 5.7.2 and 6.4.3.2).

Pure: parsing and checking of id, idPattern, type, attrs, q and the geo-query; the database
side is storage/entity_query.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ngsi.context import ActiveContext
from ngsi.entity_input import is_uri
from ngsi.errors import bad_request
from ngsi.geo import GeoQuery, parse_geo_query
from ngsi.qlang import QExpression, parse_q
from ngsi.typeselect import TypeSelection, parse_type_selection

MAX_ID_PATTERN = 512


@dataclass(frozen=True, slots=True)
class EntityQuery:
    """What to select: every part optional, all must hold."""

    expand: Callable[[str], str]
    ids: tuple[str, ...] = ()
    id_pattern: str | None = None
    types: TypeSelection | None = None
    #: Entities must carry at least one of these attributes (IRIs), as `attrs` asks.
    attributes: frozenset[str] | None = None
    q: QExpression | None = None
    geo: GeoQuery | None = None

    @classmethod
    def from_parameters(
        cls,
        context: ActiveContext,
        *,
        ids: str | list[str] | None = None,
        id_pattern: str | None = None,
        types: str | None = None,
        attributes: frozenset[str] | None = None,
        q: str | None = None,
        geo: tuple[Any, Any, Any, Any] = (None, None, None, None),
    ) -> EntityQuery:
        """Parse and check the query parameters; BadRequestData or InvalidRequest if wrong."""
        id_list = ids if isinstance(ids, list) else [i.strip() for i in (ids or "").split(",")]
        id_list = [i for i in id_list if i]
        for entity_id in id_list:
            if not is_uri(entity_id):
                raise bad_request(f"id must be a list of URIs; {entity_id!r} is not one")
        if id_pattern is not None:
            check_pattern(id_pattern)
        query = cls(
            context.expand,
            tuple(id_list),
            id_pattern,
            parse_type_selection(types) if types else None,
            attributes,
            parse_q(q) if q else None,
            parse_geo_query(*geo),
        )
        if not (
            query.ids or query.id_pattern or query.types or query.attributes or query.q or query.geo
        ):
            raise bad_request(
                "a query needs at least one of type, id, idPattern, attrs, q or a geo-query"
            )
        return query


def check_pattern(pattern: str) -> None:
    """An idPattern must be a regular expression (InvalidRequest otherwise)."""
    if len(pattern) > MAX_ID_PATTERN:
        raise bad_request(f"idPattern is longer than {MAX_ID_PATTERN} characters")
    try:
        re.compile(pattern)
    except (re.error, RecursionError, OverflowError) as error:
        raise bad_request(f"idPattern is not a valid regular expression: {error}") from None
