"""Payload families, one module each; see devices.profiles.registry for the list."""
