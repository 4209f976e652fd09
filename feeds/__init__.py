"""Feeds for route planners (DATEX II, WZDx, Waze CIFS, LDES, DCAT) and importers (GIPOD)."""
