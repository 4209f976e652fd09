"""Threshold alerts (not yet built; see the alerts issue)."""
