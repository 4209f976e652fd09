"""Which entities a rule watches: one entity, a device model, an entity type or an area.

Exactly one selector among `entity`, `device_model`, `entity_type` and `area` is the scope.
`entity_type` may also narrow `device_model` or `area`, because both select devices and a
device feeds entities of several types (a Telraam feeds ItemFlowObserved and
TrafficFlowObserved). Narrowing one entity makes no sense, so `entity` stands alone.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from shapely.geometry.base import BaseGeometry

from ngsi.geo import geometry_from_geojson

_AREA_TYPES = ("Polygon", "MultiPolygon")


class Scope(BaseModel):
    """The entities a rule applies to; see the module docstring for the allowed combinations."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    entity: str | None = Field(default=None, min_length=1)
    device_model: str | None = Field(default=None, min_length=1)
    entity_type: str | None = Field(default=None, min_length=1)
    #: A GeoJSON Polygon or MultiPolygon in WGS84 [longitude, latitude] (IETF RFC 7946).
    area: dict[str, Any] | None = None
    _geometry: BaseGeometry | None = PrivateAttr(default=None)

    @field_validator("area")
    @classmethod
    def _area_is_polygon(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        if value is None:
            return value
        if value.get("type") not in _AREA_TYPES:
            raise ValueError(
                f"area must be a GeoJSON Polygon or MultiPolygon, not type {value.get('type')!r}"
            )
        if geometry_from_geojson(value) is None:
            raise ValueError(
                f"area is not a valid GeoJSON {value['type']}: give closed rings of at least 4"
                " [longitude, latitude] positions that do not cross themselves"
            )
        return value

    @model_validator(mode="after")
    def _one_selector(self) -> Scope:
        chosen = [
            name for name in ("entity", "device_model", "area") if getattr(self, name) is not None
        ]
        if len(chosen) > 1:
            raise ValueError(
                f"scope has {' and '.join(chosen)}: give exactly one of entity, device_model,"
                " entity_type or area (entity_type may narrow device_model or area)"
            )
        if not chosen and self.entity_type is None:
            raise ValueError("scope needs one of entity, device_model, entity_type or area")
        if self.entity is not None and self.entity_type is not None:
            raise ValueError("scope entity stands alone: drop entity_type")
        if self.area is not None:
            self._geometry = geometry_from_geojson(self.area)
        return self

    @property
    def geometry(self) -> BaseGeometry | None:
        """The shapely geometry of `area`, built once when the scope was validated."""
        return self._geometry

    def describe(self) -> str:
        """A short human form: 'entity urn:...', 'device model telraam-s2 (ItemFlowObserved)'."""
        if self.entity is not None:
            return f"entity {self.entity}"
        narrowed = f" ({self.entity_type})" if self.entity_type else ""
        if self.device_model is not None:
            return f"device model {self.device_model}{narrowed}"
        if self.area is not None:
            return f"area{narrowed}"
        return f"entity type {self.entity_type}"

    def entity_mask(
        self,
        entity_ids: np.ndarray,
        device_models: np.ndarray,
        longitudes: np.ndarray,
        latitudes: np.ndarray,
    ) -> np.ndarray:
        """Which of these entities the entity / device model / area selector admits (not type)."""
        if self.entity is not None:
            return np.asarray(entity_ids == self.entity, dtype=bool)
        if self.device_model is not None:
            return np.asarray(device_models == self.device_model, dtype=bool)
        if self._geometry is not None:
            located = np.isfinite(longitudes) & np.isfinite(latitudes)
            inside = np.zeros(len(entity_ids), dtype=bool)
            # The boundary counts as inside: a sensor on the edge of a zone belongs to it.
            inside[located] = shapely.intersects_xy(
                self._geometry, longitudes[located], latitudes[located]
            )
            return inside
        return np.ones(len(entity_ids), dtype=bool)
