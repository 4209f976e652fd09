"""Device registry and device profiles: pure decoders from (topic, payload, device config) to readings."""
