"""Alert rules, their evaluation on each ingest batch, and notification delivery."""
