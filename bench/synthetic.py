"""A synthetic large index for scale benchmarks: a real index's clauses replicated, its real vectors plus noise.

Replicas keep their source clause's text and tokens (their postings are the source's, shifted by
whole copies of the index) under new clause ids; each replica's vector is the source vector plus
small noise, re-normalised, so dense search does not meet exact ties. Written as one segment of a
normal index folder, so the server, the write path and the benchmarks open it like any other.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from index.clause_index import ClauseIndex
from index.lexical import LexicalSegment
from storage.segment import SegmentContent, write_segment
from storage.store import IndexStore

NOISE = 0.01


def synthetic_content(index: ClauseIndex, size: int) -> SegmentContent:
    """`size` clauses from the live clauses of `index`, replicated (one segment's worth)."""
    if len(index.segments) != 1 or len(index.clauses) != index.segments[0].size:
        raise SystemExit("build the synthetic index from an index of one segment without deletions "
                         "(`policyqa ingest` into a new folder)")
    source = index.segments[0]
    n = source.size
    reps = -(-size // n)
    rng = np.random.default_rng(0)
    vectors = np.tile(np.asarray(source.vectors()), (reps, 1))[:size]
    vectors += rng.normal(0, NOISE, vectors.shape).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    lines, keys, documents = [], [], []
    for r in range(reps):
        count = min(n, size - r * n)
        for row in range(count):
            clause = json.loads(source.clauses.line(row))
            clause["id"] = f"{clause['id']}~syn{r}"
            clause["doc_id"] = f"{clause['doc_id']}~syn{r}"
            lines.append(json.dumps(clause, ensure_ascii=False).encode("utf-8"))
            keys.append((clause["id"], clause["doc_id"]))
        copies = {doc_id for _, doc_id in keys[-count:]}
        documents += [d.model_copy(update={"doc_id": f"{d.doc_id}~syn{r}"}) for d in source.documents
                      if f"{d.doc_id}~syn{r}" in copies]
    terms, term_of, rows, tf = source.lexical.triples()
    shifted = [(term_of, rows + r * n, tf) for r in range(reps)]
    all_terms = np.concatenate([t for t, _, _ in shifted])
    all_rows = np.concatenate([r for _, r, _ in shifted])
    keep = all_rows < size
    lexical = LexicalSegment.from_pairs({t: i for i, t in enumerate(terms)}, all_terms[keep], all_rows[keep],
                                        np.concatenate([f for _, _, f in shifted])[keep],
                                        np.tile(np.asarray(source.lexical.lengths), reps)[:size])
    embed_keys = [f"{i:040x}" for i in range(size)]  # never reused: no real text behind them
    return SegmentContent(documents, lines, keys, vectors, embed_keys, lexical,
                          np.tile(np.asarray(source.sketches), (reps, 1))[:size])


def build_synthetic(index: ClauseIndex, size: int, target: Path) -> float:
    """Write a `size`-clause synthetic index into the new folder `target`; returns the seconds it took."""
    start = time.perf_counter()
    store = IndexStore(target)
    content = synthetic_content(index, size)
    fields = IndexStore(index.segments[0].folder.parent.parent).live().fields
    with store.writing():
        with store.new_segment() as (folder, name):
            write_segment(folder, content)
        store.commit([(name, set())], {**fields, "documents": len(content.documents), "clauses": size,
                                       "synthetic_from": index.manifest.get("version")})
    return time.perf_counter() - start
