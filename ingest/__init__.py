"""Ingest: MQTT consumption, batching, acknowledgement, back-pressure and the worker process."""
