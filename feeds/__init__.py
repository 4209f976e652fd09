"""Feeds for route planners (not yet built; see the feeds issue)."""
