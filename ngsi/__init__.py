"""NGSI-LD: entity model, @context handling and the mapping of readings to Smart Data Models."""
