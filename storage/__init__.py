"""Storage: schema, migrations, TimescaleDB and plain-PostgreSQL backends, bulk writes, queries."""
