"""Attribute-level changes to a stored entity (ETSI GS CIM 009, 5.6.2-5.6.5, 5.6.17-5.6.19).

Pure functions over the stored form: they work instance by instance (an attribute's
instances are told apart by `datasetId`), keep the `createdAt` of what they replace, and
report which attributes they changed and which not, with why (the UpdateResult of 5.2.18).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ngsi.entity_input import AttributeReader
from ngsi.errors import bad_request, not_found
from storage.entity_store import StoredEntity

#: A Property or Relationship set to this value is deleted by a merge (clause 4.5.0: NGSI-LD Null).
NGSI_LD_NULL = "urn:ngsi-ld:null"


@dataclass(slots=True)
class UpdateResult:
    """Which attributes an operation changed, and which it did not and why."""

    updated: list[str] = field(default_factory=list)
    not_updated: list[tuple[str, str]] = field(default_factory=list)

    def body(self, compact: Any) -> dict[str, Any]:
        """The UpdateResult body (5.2.18) with compacted attribute names."""
        return {
            "updated": [compact(name) for name in self.updated],
            "notUpdated": [
                {"attributeName": compact(name), "reason": reason}
                for name, reason in self.not_updated
            ],
        }


def instances(value: Any) -> list[dict[str, Any]]:
    """The instances of a stored attribute value."""
    if isinstance(value, list):
        return list(value)
    return [value] if isinstance(value, dict) else []


def packed(found: list[dict[str, Any]]) -> Any:
    """The stored value of these instances: a lone default instance as a plain object."""
    if len(found) == 1 and "datasetId" not in found[0]:
        return found[0]
    return sorted(found, key=lambda i: i.get("datasetId", ""))


def _dataset(instance: dict[str, Any]) -> str:
    return str(instance.get("datasetId", ""))


def _keep_created(new: dict[str, Any], old: dict[str, Any] | None) -> dict[str, Any]:
    if old is not None and "createdAt" in old:
        new["createdAt"] = old["createdAt"]
    return new


def merge_instances(current: Any, incoming: Any, *, overwrite: bool = True) -> tuple[Any, bool]:
    """`incoming` instances replace current ones of the same datasetId (unless not
    `overwrite`); the merged value and whether anything changed."""
    by_dataset = {_dataset(i): i for i in instances(current)}
    changed = False
    for instance in instances(incoming):
        dataset = _dataset(instance)
        old = by_dataset.get(dataset)
        if old is not None and not overwrite:
            continue
        by_dataset[dataset] = _keep_created(instance, old)
        changed = True
    return packed(list(by_dataset.values())), changed


def append_attributes(
    entity: StoredEntity, incoming: dict[str, Any], *, overwrite: bool
) -> UpdateResult:
    """Append attributes (5.6.3); with `overwrite` False existing instances stay as they are."""
    result = UpdateResult()
    for name, value in incoming.items():
        current = entity.attributes.get(name)
        if current is None:
            entity.attributes[name] = value
            result.updated.append(name)
            continue
        merged, changed = merge_instances(current, value, overwrite=overwrite)
        entity.attributes[name] = merged
        if changed:
            result.updated.append(name)
        else:
            result.not_updated.append((name, "the attribute exists and noOverwrite was given"))
    return result


def update_attributes(entity: StoredEntity, incoming: dict[str, Any]) -> UpdateResult:
    """Update existing attribute instances only (5.6.2); the others are reported."""
    result = UpdateResult()
    for name, value in incoming.items():
        current = entity.attributes.get(name)
        existing = {_dataset(i) for i in instances(current)}
        wanted = instances(value)
        missing = [_dataset(i) for i in wanted if _dataset(i) not in existing]
        if current is None or missing:
            which = "the attribute" if current is None else f"datasetId {missing[0] or 'default'}"
            result.not_updated.append((name, f"{which} does not exist"))
            continue
        entity.attributes[name], _ = merge_instances(current, value)
        result.updated.append(name)
    return result


def merge_entity(entity: StoredEntity, incoming: dict[str, Any]) -> None:
    """Merge attributes into the entity (5.6.17); NGSI-LD Null deletes an attribute."""
    for name, value in incoming.items():
        if any(_is_null(i) for i in instances(value)):
            entity.attributes.pop(name, None)
            continue
        current = entity.attributes.get(name)
        if current is None:
            entity.attributes[name] = value
        else:
            entity.attributes[name], _ = merge_instances(current, value)


def _is_null(instance: dict[str, Any]) -> bool:
    return NGSI_LD_NULL in (instance.get("value"), instance.get("object"))


def find_instance(
    entity: StoredEntity, name: str, dataset_id: str | None, shown: str
) -> dict[str, Any]:
    """The instance of attribute `name` with `dataset_id`; ResourceNotFound without it."""
    current = entity.attributes.get(name)
    if current is None:
        raise not_found(f"entity {entity.id} has no attribute {shown!r}")
    for instance in instances(current):
        if _dataset(instance) == (dataset_id or ""):
            return instance
    raise not_found(f"attribute {shown!r} of {entity.id} has no instance {dataset_id or 'default'}")


def patch_attribute(
    entity: StoredEntity, name: str, shown: str, body: Any, reader: AttributeReader
) -> None:
    """Partial attribute update (5.6.4): the members given replace those of the instance."""
    if not isinstance(body, dict):
        raise bad_request("a partial attribute update must be a JSON object")
    dataset_id = body.get("datasetId")
    old = find_instance(entity, name, dataset_id, shown)
    patch = {key: value for key, value in body.items() if key != "type"}
    merged_raw = {**_raw(old), **patch}
    if "type" in body:
        merged_raw["type"] = body["type"]
    new = _keep_created(reader.instance(shown, merged_raw, 0), old)
    entity.attributes[name], _ = merge_instances(entity.attributes[name], new)


def _raw(instance: dict[str, Any]) -> dict[str, Any]:
    """A stored instance as request input again (system members dropped)."""
    return {k: v for k, v in instance.items() if k not in ("createdAt", "modifiedAt")}


def replace_attribute(entity: StoredEntity, name: str, shown: str, new: Any) -> None:
    """Replace an attribute (5.6.19): its instances of the given datasetIds."""
    if name not in entity.attributes:
        raise not_found(f"entity {entity.id} has no attribute {shown!r}")
    entity.attributes[name], _ = merge_instances(entity.attributes[name], new)


def delete_attribute(
    entity: StoredEntity, name: str, shown: str, dataset_id: str | None, delete_all: bool
) -> None:
    """Delete an attribute instance, or all of them with `delete_all` (5.6.5)."""
    if name not in entity.attributes:
        raise not_found(f"entity {entity.id} has no attribute {shown!r}")
    if delete_all:
        del entity.attributes[name]
        return
    find_instance(entity, name, dataset_id, shown)
    left = [i for i in instances(entity.attributes[name]) if _dataset(i) != (dataset_id or "")]
    if left:
        entity.attributes[name] = packed(left)
    else:
        del entity.attributes[name]
