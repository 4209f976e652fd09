"""Composition root: settings, CLI and wiring of the other packages."""
