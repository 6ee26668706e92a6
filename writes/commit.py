"""Writing the index: add, replace and remove documents at the cost of what changed, then merge segments.

A write reads the live version's document lists (small), embeds only the new clauses whose
embedding input is not known (a replaced document's unchanged clauses reuse their vectors),
writes them as one new segment, and commits a version that lists it and records the documents
it replaces or removes as deleted in their older segments. Nothing else is read or rewritten.

Segments are merged by size tiers: the newest segments are merged into one as soon as together
they hold as many live clauses as the segment before them, so each clause is rewritten about
log2(index / write) times over its life and a search visits few segments; a segment with more
deleted than live rows is compacted. A merge is a commit like any other (kill -9 leaves the last
version) and reads vectors and postings back: nothing is re-embedded or re-tokenised.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from embedding.encoder import Encoder
from index.clause_text import clause_input
from index.lexical import LexicalSegment
from index.tokenize import tokenize
from index.types import ModelMismatchError
from ingest.schema import Clause, Document
from storage.pending import clear_pending, load_pending, save_pending
from storage.segment import Segment, SegmentContent, merged_content, read_doc_keys, read_doc_rows, write_segment
from storage.store import IndexStore, Version

# Encoded clauses are checkpointed this many at a time (about 20 s of encoding with ONNX int8).
CHECKPOINT_CLAUSES = 512
MAX_SEGMENTS = 12  # past this many, the newest are merged whatever their sizes (a search visits each)
_RECORDED_PACKAGES = ("policyqa", "sentence-transformers", "torch", "onnxruntime", "faiss-cpu", "jieba")


def embed_key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def update_index(
    index_dir: Path,
    encoder: Encoder,
    add_documents: list[Document],
    add_clauses: list[Clause],
    replace_sources: set[str] = frozenset(),
    remove_doc_ids: set[str] = frozenset(),
    with_context: bool = True,
    on_embedded: Callable[[int, int], None] | None = None,
    merge: bool = True,
) -> str:
    """Commit a new version: the live one minus removed/replaced documents plus the new ones.

    A new document replaces the live one from the same source file or with the same doc id.
    Clauses are encoded shortest first, in checkpointed chunks: a stopped ingest run again reuses
    what it had encoded. `on_embedded(chars, total_chars)` reports progress in characters.
    `merge`: merge segments now if they are due (else call `merge_segments` later).
    """
    store = IndexStore(index_dir)
    with store.writing():
        version = _write(store, encoder, add_documents, add_clauses, set(replace_sources), set(remove_doc_ids),
                         with_context, on_embedded)
        if merge:
            version = _merge_locked(store) or version
    return version


def merge_segments(index_dir: Path) -> str | None:
    """Merge the segments that are due (see the module's docstring); returns the new version, or None."""
    store = IndexStore(index_dir)
    with store.writing():
        return _merge_locked(store) if store.exists() else None


def _write(store: IndexStore, encoder: Encoder, add_documents, add_clauses, replace_sources, remove_doc_ids,
           with_context, on_embedded) -> str:
    live = store.live() if store.exists() else None  # raises on a damaged folder: never write over it
    if live is not None and live.manifest.get("model_id") != encoder.model_id:
        raise ModelMismatchError(str(live.manifest.get("model_id")), encoder.model_id)
    new_ids = {d.doc_id for d in add_documents}
    parts, reusable = [], {}
    for name, deleted in live.segments if live else []:
        folder = store.segment_folder(name)
        with store.reading(live.name):
            documents = [d for d in read_doc_keys(folder) if d.doc_id not in deleted]
            rows = read_doc_rows(folder)
            dropped = {d.doc_id for d in documents
                       if d.source_path in replace_sources or d.doc_id in remove_doc_ids or d.doc_id in new_ids}
            if dropped - remove_doc_ids:  # replaced documents: their unchanged clauses keep their vectors
                reusable.update(_vectors_of(folder, [rows[d] for d in dropped - remove_doc_ids if d in rows]))
        parts.append((name, deleted | dropped, len(documents) - len(dropped),
                      sum(len(rows.get(d.doc_id, ())) for d in documents if d.doc_id not in dropped)))
    reusable.update(load_pending(store.index_dir, encoder.model_id))
    inputs = [clause_input(c, with_context) for c in add_clauses]
    keys = [embed_key(t) for t in inputs]
    vectors, embedded_now = embed_missing(store.index_dir, encoder, inputs, keys, reusable, on_embedded)
    segments = [(name, deleted) for name, deleted, documents, _ in parts if documents > 0]
    if add_clauses or add_documents:
        lexical_texts = inputs if with_context else [clause_input(c, True) for c in add_clauses]
        content = SegmentContent.of(add_documents, add_clauses, vectors, keys,
                                    LexicalSegment.build([tokenize(t) for t in lexical_texts]))
        with store.new_segment() as (folder, name):
            write_segment(folder, content)
        segments.append((name, set()))
    fields = {
        "model_id": encoder.model_id,
        "dimensions": encoder.dim,
        "embedding_context": with_context,
        "encoder_variant": getattr(encoder, "variant", None),
        "documents": sum(documents for _, _, documents, _ in parts) + len(add_documents),
        "clauses": sum(clauses for _, _, _, clauses in parts) + len(add_clauses),
        "embedded_now": embedded_now,
        "reused_embeddings": len(keys) - embedded_now,
        "versions": {name: importlib.metadata.version(name) for name in _RECORDED_PACKAGES},
    }
    version = store.commit(segments, fields)
    clear_pending(store.index_dir)
    return version


def _vectors_of(folder: Path, row_ranges: list[range]) -> dict[str, np.ndarray]:
    if not row_ranges:
        return {}
    rows = np.concatenate([np.arange(r.start, r.stop) for r in row_ranges])
    keys = np.load(folder / "embed_keys.npy", mmap_mode="r")[rows]
    vectors = np.load(folder / "embeddings.npy", mmap_mode="r")[rows]
    return {k.decode(): np.array(v) for k, v in zip(keys, vectors, strict=True)}


def embed_missing(index_dir: Path, encoder: Encoder, inputs: list[str], keys: list[str], known: dict[str, np.ndarray],
           on_embedded) -> tuple[np.ndarray, int]:
    """Vectors for the inputs: known ones reused, the rest encoded shortest first in checkpointed chunks."""
    missing = {key: text for key, text in zip(keys, inputs, strict=True) if key not in known}
    todo = sorted(missing, key=lambda key: len(missing[key]))
    total_chars = sum(map(len, missing.values()))
    for start in range(0, len(todo), CHECKPOINT_CLAUSES):
        chunk = todo[start : start + CHECKPOINT_CLAUSES]
        fresh = encoder.encode_passages([missing[key] for key in chunk])
        save_pending(index_dir, encoder.model_id, chunk, fresh)
        known.update(zip(chunk, fresh, strict=True))
        if on_embedded:
            on_embedded(sum(len(missing[key]) for key in chunk), total_chars)
    if not keys:
        return np.empty((0, encoder.dim), dtype=np.float32), 0
    return np.stack([known[key] for key in keys]).astype(np.float32), len(todo)


def merge_start(live: Sequence[int], rows: Sequence[int]) -> int | None:
    """Where the segments to merge begin (they run to the newest), or None: nothing is due.

    `live` and `rows`: live and stored clauses per segment, oldest first. The newest segments merge
    once together they hold as many live clauses as the one before them; a segment more deleted than
    live is compacted; past MAX_SEGMENTS the newest merge whatever their sizes.
    """
    start = None
    tail = 0
    for i in range(len(live) - 1, 0, -1):
        tail += live[i]
        if tail >= live[i - 1]:
            start = i - 1
    for i, (kept, stored) in enumerate(zip(live, rows, strict=True)):
        if kept * 2 < stored:
            start = i if start is None else min(start, i)
            break
    if len(live) > MAX_SEGMENTS:
        start = min(start if start is not None else len(live), len(live) - MAX_SEGMENTS)
    return start


def _merge_locked(store: IndexStore) -> str | None:
    version = store.live()
    live, stored = [], []
    with store.reading(version.name):
        for name, deleted in version.segments:
            rows = read_doc_rows(store.segment_folder(name))
            live.append(sum(len(r) for doc_id, r in rows.items() if doc_id not in deleted))
            stored.append(sum(len(r) for r in rows.values()))
    start = merge_start(live, stored)
    if start is None:
        return None
    with store.reading(version.name):
        parts = []
        for name, deleted in version.segments[start:]:
            segment = Segment(store.segment_folder(name))
            parts.append((segment, segment.live_mask(deleted), deleted))
    content = merged_content(parts)
    with store.new_segment() as (folder, name):
        write_segment(folder, content)
    return store.commit([*version.segments[:start], (name, set())], _carried(version))


def _carried(version: Version) -> dict:
    """What a merge's version says of itself: the same documents, model and counts as the version it merges."""
    return {**version.fields, "embedded_now": 0, "reused_embeddings": 0, "merged": True}
