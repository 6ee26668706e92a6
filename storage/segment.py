"""One segment of the index: an immutable folder of documents, clauses, vectors and postings.

Its files (documents, clauses read lazily, vectors, FAISS, postings) are listed in
docs/architecture.md, "Storage layout", the one place the layout is written down.

A write adds a segment with the new documents only; which documents of older segments are deleted
is recorded by the version that lists the segments (storage/store.py). A merge writes one segment
from the live rows of several, reading their vectors and postings back: nothing is re-embedded
or re-tokenised.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path
from typing import NamedTuple

import numpy as np

from index.collapse import sketches
from index.dense import DenseIndex
from index.lexical import LexicalSegment
from ingest.schema import Clause, Document

KEY_CHARS = 40  # an embed key is the SHA-1 of what was embedded, in hex
SKETCH_FILE = "minhash.npy"


class LazyClauses(Sequence[Clause]):
    """A segment's clause store, parsed one clause at a time as it is read.

    Opening an index must not parse every clause (a million take ~10 s through pydantic); a
    search reads a few dozen. Ids and document ids are loaded at once: the index maps need them.
    """

    def __init__(self, folder: Path) -> None:
        self._path = folder / "clauses.jsonl"
        # Line i spans ends[i] - starts[i] bytes; os.pread reads it without a shared file position,
        # so the server's threads can read clauses at the same time.
        self._starts = np.load(folder / "clause_offsets.npy")
        self._ends = np.append(self._starts[1:], self._path.stat().st_size)
        keys = json.loads((folder / "clause_keys.json").read_text(encoding="utf-8"))
        self.ids = [k[0] for k in keys]
        self.doc_ids = [k[1] for k in keys]
        self._file = self._path.open("rb")
        self._parse = lru_cache(maxsize=4096)(self._read)  # a search reads a few dozen clauses

    def line(self, row: int) -> bytes:
        """The stored JSON line of a clause, unparsed (a merge copies it as it is)."""
        start = int(self._starts[row])
        return os.pread(self._file.fileno(), int(self._ends[row]) - start, start)

    def _read(self, row: int) -> Clause:
        return Clause.model_validate_json(self.line(row))

    def __len__(self) -> int:
        return len(self._starts)

    def __getitem__(self, row):
        if isinstance(row, slice):
            return [self._parse(i) for i in range(*row.indices(len(self)))]
        if row < 0:
            row += len(self)
        if not 0 <= row < len(self):
            raise IndexError(row)
        return self._parse(row)

    def __iter__(self) -> Iterator[Clause]:
        with self._path.open("rb") as f:
            for line in f:
                yield Clause.model_validate_json(line)


class DocumentKey(NamedTuple):
    """What a write needs of a stored document (doc_keys.json): not its text, which documents.jsonl holds."""

    doc_id: str
    source_path: str
    sha256: str


def read_doc_keys(folder: Path) -> list[DocumentKey]:
    return [DocumentKey(*k) for k in json.loads((folder / "doc_keys.json").read_text(encoding="utf-8"))]


def read_jsonl(path: Path, model) -> list:
    with path.open(encoding="utf-8") as f:
        return [model.model_validate_json(line) for line in f if line.strip()]


def _write_lines(path: Path, lines: Sequence[bytes]) -> np.ndarray:
    """Writes the lines (each without its newline); returns the byte offset where each starts."""
    offsets = np.zeros(len(lines), dtype=np.int64)
    with path.open("wb") as f:
        position = 0
        for i, line in enumerate(lines):
            offsets[i] = position
            f.write(line.rstrip(b"\n"))
            f.write(b"\n")
            position += len(line.rstrip(b"\n")) + 1
        f.flush()
        os.fsync(f.fileno())
    return offsets


def doc_rows(clause_keys: Sequence[tuple[str, str]]) -> dict[str, list[int]]:
    """{doc id: [first row, end row]}; rows are written document by document."""
    rows: dict[str, list[int]] = {}
    for row, (_, doc_id) in enumerate(clause_keys):
        rows.setdefault(doc_id, [row, row])[1] = row + 1
    return rows


def read_doc_rows(folder: Path) -> dict[str, range]:
    return {doc_id: range(a, b) for doc_id, (a, b) in
            json.loads((folder / "doc_rows.json").read_text(encoding="utf-8")).items()}


def file_sizes(folder: Path) -> dict[str, int]:
    return {str(p.relative_to(folder)): p.stat().st_size for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


@dataclass
class SegmentContent:
    """What a segment is written from: rows in order, documents with their rows together."""

    documents: list[Document]
    clause_lines: list[bytes]
    clause_keys: list[tuple[str, str]]  # (clause id, doc id) per row
    vectors: np.ndarray
    embed_keys: list[str]
    lexical: LexicalSegment
    sketches: np.ndarray  # near-duplicate sketches of the clauses' norm_text (index/collapse.py)

    @classmethod
    def of(cls, documents: list[Document], clauses: list[Clause], vectors: np.ndarray, embed_keys: list[str],
           lexical: LexicalSegment) -> SegmentContent:
        return cls(documents, [c.model_dump_json().encode("utf-8") for c in clauses],
                   [(c.id, c.doc_id) for c in clauses], vectors, embed_keys, lexical,
                   sketches([c.norm_text for c in clauses]))


def write_segment(folder: Path, content: SegmentContent) -> dict:
    """Write a segment into `folder` (a staging folder the caller renames); returns its manifest."""
    folder.mkdir(parents=True, exist_ok=True)
    doc_lines = [d.model_dump_json().encode("utf-8") for d in content.documents]
    _write_lines(folder / "documents.jsonl", doc_lines)
    keys = [DocumentKey(d.doc_id, d.source_path, d.sha256) for d in content.documents]
    (folder / "doc_keys.json").write_text(json.dumps(keys, ensure_ascii=False), encoding="utf-8")
    np.save(folder / "clause_offsets.npy", _write_lines(folder / "clauses.jsonl", content.clause_lines))
    (folder / "clause_keys.json").write_text(json.dumps(content.clause_keys, ensure_ascii=False), encoding="utf-8")
    vectors = np.ascontiguousarray(content.vectors, dtype=np.float32)
    np.save(folder / "embeddings.npy", vectors)
    np.save(folder / "embed_keys.npy", np.array(content.embed_keys, dtype=f"S{KEY_CHARS}"))
    (folder / "doc_rows.json").write_text(json.dumps(doc_rows(content.clause_keys), ensure_ascii=False), encoding="utf-8")
    DenseIndex.build(vectors).save(folder / "dense.faiss")
    content.lexical.save(folder / "lexical")
    np.save(folder / SKETCH_FILE, content.sketches)
    manifest = {"name": folder.name, "documents": len(content.documents), "clauses": len(content.clause_lines),
                "files": file_sizes(folder)}
    path = folder / "manifest.json"
    path.write_text(json.dumps(manifest, ensure_ascii=False, indent=2), encoding="utf-8")
    return manifest


def segment_problem(folder: Path) -> str | None:
    """Why a segment folder is not complete, or None when it is."""
    short = f"segments/{folder.name}"
    try:
        manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
        files = manifest["files"]
    except FileNotFoundError:
        return f"{short}/manifest.json is missing"
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
        return f"{short}/manifest.json cannot be read ({exc})"
    for name, size in files.items():
        path = folder / name
        if not path.is_file():
            return f"{short}/{name} is missing"
        if path.stat().st_size != size:
            return f"{short}/{name} has {path.stat().st_size:,} bytes, the manifest says {size:,}"
    return None


class Segment:
    """A committed segment opened for reading (memory-mapped where it can be); shared by versions."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.name = folder.name
        self.documents: list[Document] = read_jsonl(folder / "documents.jsonl", Document)
        self.clauses = LazyClauses(folder)
        self.dense = DenseIndex.load(folder / "dense.faiss")
        self.lexical = LexicalSegment.load(folder / "lexical")
        self.doc_rows = read_doc_rows(folder)

    @property
    def size(self) -> int:
        return len(self.clauses)

    @cached_property
    def row_of(self) -> dict[str, int]:
        return {clause_id: row for row, clause_id in enumerate(self.clauses.ids)}

    def vectors(self) -> np.ndarray:
        return np.load(self.folder / "embeddings.npy", mmap_mode="r")

    def embed_keys(self) -> np.ndarray:
        return np.load(self.folder / "embed_keys.npy", mmap_mode="r")

    @cached_property
    def sketches(self) -> np.ndarray:
        """Each row's near-duplicate sketch; a segment written before sketches were stored has them
        computed here, once (~2 s per 50,000 clauses)."""
        path = self.folder / SKETCH_FILE
        if path.is_file():
            return np.load(path, mmap_mode="r")
        return sketches([json.loads(self.clauses.line(row))["norm_text"] for row in range(self.size)])

    def live_mask(self, deleted: set[str]) -> np.ndarray | None:
        """Rows of documents not deleted (None: every row is live)."""
        gone = [self.doc_rows[d] for d in deleted if d in self.doc_rows]
        if not gone:
            return None
        mask = np.ones(self.size, dtype=bool)
        for rows in gone:
            mask[rows.start:rows.stop] = False
        return mask


def merged_content(parts: Sequence[tuple[Segment, np.ndarray | None, set[str]]]) -> SegmentContent:
    """One segment's content from the live rows of several (segment, live mask, deleted doc ids)."""
    documents, lines, keys, vectors, embed_keys, sketched = [], [], [], [], [], []
    vocab: dict[str, int] = {}
    terms, rows, counts, lengths = [], [], [], []
    offset = 0
    for segment, live, deleted in parts:
        keep = np.arange(segment.size) if live is None else np.flatnonzero(live)
        documents += [d for d in segment.documents if d.doc_id not in deleted]
        lines += [segment.clauses.line(int(r)) for r in keep]
        keys += [(segment.clauses.ids[r], segment.clauses.doc_ids[r]) for r in keep]
        vectors.append(np.asarray(segment.vectors()[keep]))
        embed_keys += [k.decode() for k in segment.embed_keys()[keep]]
        sketched.append(np.asarray(segment.sketches[keep]))
        seg_terms, term_of, seg_rows, tf = segment.lexical.triples()
        new_row = np.full(segment.size, -1, dtype=np.int64)
        new_row[keep] = offset + np.arange(len(keep))
        term_map = np.array([vocab.setdefault(t, len(vocab)) for t in seg_terms], dtype=np.int64)
        alive = new_row[seg_rows] >= 0
        terms.append(term_map[term_of[alive]] if len(term_map) else term_of[alive])
        rows.append(new_row[seg_rows[alive]])
        counts.append(tf[alive])
        lengths.append(np.asarray(segment.lexical.lengths)[keep])
        offset += len(keep)
    lexical = LexicalSegment.from_pairs(vocab, np.concatenate(terms), np.concatenate(rows), np.concatenate(counts),
                                        np.concatenate(lengths))
    dim = parts[0][0].vectors().shape[1]
    stacked = np.concatenate(vectors) if vectors else np.empty((0, dim), np.float32)
    return SegmentContent(documents, lines, keys, stacked, embed_keys, lexical, np.concatenate(sketched))
