"""Who publishes the feeds and under which licence: the header of WZDx, Waze and the DCAT catalogue.

Read from Settings (`feeds_publisher`, `feeds_license`, `feeds_contact_email`,
`feeds_base_url`); until those fields exist the defaults below apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

#: Modellicentie Gratis Hergebruik v1.0 (the Flemish government's open-data licence).
MODEL_LICENCE = "https://data.vlaanderen.be/id/licentie/modellicentie-gratis-hergebruik/v1.0"
CC_BY_4 = "https://creativecommons.org/licenses/by/4.0/"
CC_ZERO = "https://creativecommons.org/publicdomain/zero/1.0/"
#: Titles of the licences the catalogue knows by name (nl, en); any other URL is used as is.
LICENCE_TITLES = {
    MODEL_LICENCE: ("Modellicentie Gratis Hergebruik v1.0", "Model licence free reuse v1.0"),
    CC_BY_4: ("Creative Commons Naamsvermelding 4.0", "Creative Commons Attribution 4.0"),
    CC_ZERO: ("Creative Commons Zero 1.0", "Creative Commons Zero 1.0 (public domain)"),
}


@dataclass(frozen=True, slots=True)
class Publication:
    """The publisher and licence of every feed and of the catalogue."""

    publisher: str = "Stadspuls"
    license: str = MODEL_LICENCE
    contact_email: str | None = None
    #: The public URL of the API (e.g. https://data.stad.be); None: the request's own base URL.
    base_url: str | None = None

    @property
    def key(self) -> str:
        """Text that changes when anything a feed shows of the publication does (for ETags)."""
        return f"{self.publisher}|{self.license}|{self.contact_email}|{self.base_url}"


def publication_from_settings(settings: Any) -> Publication:
    """The publication that `settings` configure (defaults for the fields it lacks)."""
    default = Publication()
    return Publication(
        publisher=getattr(settings, "feeds_publisher", None) or default.publisher,
        license=getattr(settings, "feeds_license", None) or default.license,
        contact_email=getattr(settings, "feeds_contact_email", None),
        base_url=getattr(settings, "feeds_base_url", None),
    )
