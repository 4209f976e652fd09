"""What to do with a batch the database refuses for a reason other than connectivity."""

from __future__ import annotations

from storage.records import Batch

from .pipeline import BuiltBatch, dead_letter


def dead_letter_all(built: BuiltBatch, detail: str) -> Batch:
    """A batch holding only dead letters (reason `storage_error`) for every message."""
    return Batch(
        dead_letters=[
            dead_letter(message, "storage_error", detail, None) for message in built.messages
        ]
    )
