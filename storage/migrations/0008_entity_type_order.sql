-- A page of one type's entities in id order (GET /entities?type=T&q=...&limit=20) must not
-- walk every entity of the tenant: with (tenant, type, id) PostgreSQL reads the type's
-- entities in id order and stops after the page (storage/entity_store.py _page_of_type);
-- the few entities with further types have an index of their own. Measured with 100,000
-- entities: 100 ms → 0.1 ms per statement (bench/README.md).
-- Only `type` is indexed, never `entity`: ingest's updates stay HOT.
CREATE INDEX entities_tenant_type_id_idx ON entities (tenant, type, id);
DROP INDEX entities_tenant_type_idx;
CREATE INDEX entities_multi_typed_idx ON entities (tenant, id) WHERE extra_types <> '{}';
