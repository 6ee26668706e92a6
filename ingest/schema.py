"""The core records ingest produces: a Document and its Clauses.

Everything downstream (index, api, eval) reads these types; they serialise to
JSON Lines through pydantic so the parsed corpus on disk is the same shape as
what `policyqa parse` prints.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Document(BaseModel):
    """One policy document (a file, or one of several documents pasted into a file)."""

    doc_id: str
    title: str
    source_path: str
    issuer: str | None = Field(default=None, description="发文机关, e.g. 鞍山市教育局")
    doc_number: str | None = Field(default=None, description="文号, e.g. 鞍教发〔2017〕66号")
    date: str | None = Field(default=None, description="ISO date the document was issued or published")
    region: str | None = Field(default=None, description="province or city the document comes from")
    forwarded_by: str | None = Field(
        default=None, description="the body that forwards (转发) another body's document, when the page names one"
    )
    sha256: str = Field(description="hash of the normalised text; equal hashes are duplicate documents")
    chars: int = 0
    added: str | None = Field(
        default=None, description="when this text entered the index (ISO 8601, UTC); kept while the text is unchanged"
    )
    text: str = Field(default="", description="the cleaned document text that clause offsets point into")


class Clause(BaseModel):
    """One addressable clause: the unit that is indexed, retrieved and cited."""

    id: str = Field(description="stable address, e.g. 002_d6057a83cdbdb456#二.(三).2")
    doc_id: str
    doc_title: str
    heading_path: list[str] = Field(description="headings from the top down to this clause's own, as written")
    text: str = Field(description="the clause as shown to users, original script")
    norm_text: str = Field(description="simplified, half-width form that matching reads")
    position: int = Field(description="order of the clause in its document, from 0")
    char_start: int = Field(description="offset of the clause in the document's cleaned text")
    char_end: int


SkipCode = Literal["unsupported_type", "unreadable", "cannot_open", "empty", "no_document_text", "too_many_clauses",
                   "duplicate"]


class SkippedFile(BaseModel):
    """A file ingest could not use, and why: shown in the ingest report."""

    path: str
    code: SkipCode = Field(description="the kind of problem, for programs")
    reason: str = Field(description="what is wrong, for people")
    duplicate_of: str | None = Field(default=None, description="the doc id of the document with the same text")


class ParsedFile(BaseModel):
    """What one input file turned into."""

    source_path: str
    documents: list[Document]
    clauses: list[Clause]
