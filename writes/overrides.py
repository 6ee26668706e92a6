"""Metadata corrected by staff: stored beside the index, applied whenever the document is (re)written.

A correction is kept per doc id in `<index_dir>/overrides.json` (written atomically), so re-ingesting
the same file keeps it; it is applied to the Document before a write commits, so filters, citations
and the embedded title context all use it (a new title re-embeds that document's clauses).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ingest.schema import Clause, Document

OVERRIDES_FILE = "overrides.json"


class MetadataChange(BaseModel):
    """The fields a person may correct; a field left out keeps its value, an empty string clears it
    (but a title, which every citation needs)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    title: str | None = Field(default=None, min_length=1, max_length=200)
    issuer: str | None = Field(default=None, max_length=100, description="发文机关")
    doc_number: str | None = Field(default=None, max_length=100, description="文号")
    date: str | None = Field(default=None, pattern=r"^(\d{4}(-\d{2}(-\d{2})?)?)?$", description="YYYY, YYYY-MM or YYYY-MM-DD")
    region: str | None = Field(default=None, max_length=50)

    @field_validator("issuer", "doc_number", "date", "region")
    @classmethod
    def _no_control_characters(cls, value: str | None) -> str | None:
        if value is not None and any(ord(ch) < 32 for ch in value):
            raise ValueError("control characters are not allowed")
        return value

    def fields(self) -> dict[str, str | None]:
        """The fields set, empty strings as None (cleared)."""
        return {k: (v or None) for k, v in self.model_dump(exclude_unset=True).items()}


class Overrides:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self) -> dict[str, dict]:
        if not self.path.is_file():
            return {}
        return json.loads(self.path.read_text(encoding="utf-8"))

    def merged(self, doc_id: str, change: MetadataChange) -> dict:
        """The document's overrides with this change on top."""
        return {**self.load().get(doc_id, {}), **change.fields()}

    def save(self, doc_id: str, fields: dict) -> None:
        stored = self.load()
        stored[doc_id] = fields
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_name(f".{self.path.name}.partial")
        partial.write_text(json.dumps(stored, ensure_ascii=False, indent=1), encoding="utf-8")
        os.replace(partial, self.path)


def apply_overrides(documents: list[Document], clauses: list[Clause],
                    overrides: dict[str, dict]) -> tuple[list[Document], list[Clause]]:
    """The documents with their overrides, and clauses carrying the corrected titles."""
    documents = [d.model_copy(update=overrides[d.doc_id]) if d.doc_id in overrides else d for d in documents]
    titles = {d.doc_id: d.title for d in documents}
    clauses = [c if c.doc_title == titles.get(c.doc_id, c.doc_title) else c.model_copy(update={"doc_title": titles[c.doc_id]})
               for c in clauses]
    return documents, clauses
