"""Device registry and device profiles.

A profile is a pure decoder from (topic, payload bytes, device config) to readings.
"""
