"""What the models read for a clause: the encoder and BM25 its normalised text, the reranker its original text.

Both put the clause where it stands first (document title > heading path): queries name the place or the
document (`青岛幼儿园配建标准`) that only the title carries.
"""

from __future__ import annotations

from ingest.normalize import normalize_for_matching
from ingest.schema import Clause


def context_of(clause: Clause) -> str:
    return " > ".join([clause.doc_title, *clause.heading_path])


def clause_input(clause: Clause, with_context: bool) -> str:
    """What the encoder and BM25 read: normalised text, optionally after its title and headings (BM25 always
    reads the context)."""
    if not with_context:
        return clause.norm_text
    return normalize_for_matching(context_of(clause)) + "\n" + clause.norm_text


def passage_text(clause: Clause, text: str | None = None) -> str:
    """What the reranker reads, in training and in use alike: the context, then the text as written (the whole
    clause, or one of its sentences): it learned traditional script and full-width digits as users write them."""
    return context_of(clause) + "\n" + (clause.text if text is None else text)
