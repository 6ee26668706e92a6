"""Copy a local index into Qdrant without re-embedding: vectors, BM25 terms and documents as they are.

The copy goes into a collection of its own, named after the alias and the local version it copies;
searches keep reading the alias meanwhile. A stopped copy run again resumes: documents already in
that collection (a document point is written after all its clauses) are skipped. When every document
is there the alias switches to the copy in one operation (the collection it named before is dropped).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from backends.qdrant_store import META_ID, QdrantBackend, must
from storage.segment import Segment
from storage.store import IndexStore


class SegmentVectors:
    """What the encoder saw of an existing segment's rows: vectors, embed keys, BM25 tokens per row."""

    def __init__(self, segment: Segment) -> None:
        self.vectors = segment.vectors()
        self.keys = segment.embed_keys()
        terms, term_of, rows, tf = segment.lexical.triples()
        order = np.argsort(rows, kind="stable")
        self._terms, self._term_of, self._tf = terms, term_of[order], tf[order]
        self._starts = np.searchsorted(rows[order], np.arange(segment.size + 1))

    def tokens(self, row: int) -> list[str]:
        """The row's tokens as BM25 counted them (order does not matter to a bag of words)."""
        start, end = self._starts[row], self._starts[row + 1]
        return [self._terms[t] for t, n in zip(self._term_of[start:end], self._tf[start:end], strict=True)
                for _ in range(int(n))]


def migrate_to_qdrant(index_dir: Path, target: QdrantBackend, on_document: Callable[[int, int], None] | None = None) -> tuple[str, int]:
    """Copy the live version of the local index in `index_dir`; returns (the collection, documents copied now)."""
    store = IndexStore(index_dir)
    version = store.live()
    fields = version.fields
    name = f"{target.alias}-from-{version.name}"
    segments = [(Segment(store.segment_folder(s)), deleted) for s, deleted in version.segments]
    lengths = np.concatenate([s.lexical.lengths[m] if (m := s.live_mask(d)) is not None else s.lexical.lengths
                              for s, d in segments] or [np.ones(1)])
    if not target.call("collection_exists", name):
        target.create({**{k: fields.get(k) for k in ("model_id", "dimensions", "embedding_context", "encoder_variant")},
                       "avg_length": float(lengths.mean()), "migrated_from": version.name}, name=name)
    avg_length = target.meta(name)["avg_length"]
    done = {p.payload["doc_id"] for p in target.scroll(name, must(kind="document"))}
    total = sum(1 for s, deleted in segments for d in s.documents if d.doc_id not in deleted)
    copied = 0
    for segment, deleted in segments:
        rows = SegmentVectors(segment)
        for document in segment.documents:
            if document.doc_id in deleted or document.doc_id in done:
                continue
            span = segment.doc_rows.get(document.doc_id, range(0))
            target.upsert(name, [
                target.clause_point(version.name, segment.clauses[r], rows.vectors[r], rows.keys[r].decode(),
                                    rows.tokens(r), document, avg_length, state="live")
                for r in span
            ])
            target.upsert(name, [target.document_point(version.name, document, len(span), state="live")])
            copied += 1
            if on_document:
                on_document(len(done) + copied, total)
    counts = {"version": version.name, "documents": target.call("count", name, count_filter=must(kind="document"), exact=True).count,
              "clauses": target.call("count", name, count_filter=must(kind="clause"), exact=True).count}
    target.call("set_payload", name, counts, points=[META_ID], wait=True)
    target.switch_alias(name)
    return name, copied
