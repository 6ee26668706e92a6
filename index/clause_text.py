"""What the models read for a clause: the encoder and BM25 its normalised text, the reranker its simplified text.

Both put the clause where it stands first (document title > heading path): queries name the place or the
document (`青岛幼儿园配建标准`) that only the title carries.
"""

from __future__ import annotations

from ingest.normalize import normalize_for_matching, to_simplified
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
    """What the reranker reads, in training and in use alike: the context, then the text (the whole clause, or
    one of its sentences) in simplified script, as its questions (`question_text`). Full-width forms stay as
    written, as the shipped weights learned them. Script matters: 农村寄宿生补助多少钱 against a clause on
    boarders' allowances written in traditional script scored 0.50 as written, 0.83 in simplified."""
    return to_simplified(context_of(clause) + "\n" + (clause.text if text is None else text))


def question_text(query: str) -> str:
    """What the reranker reads for a question: simplified, as its passages."""
    return to_simplified(query)
