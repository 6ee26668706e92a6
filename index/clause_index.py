"""The clause index: dense (FAISS) + lexical (BM25) over one versioned store, and hybrid search.

`ClauseIndex.open` loads the live version; `update_index` adds, replaces and removes documents
and commits a new version atomically, re-embedding only clauses whose embedding input changed.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
from collections.abc import Callable, Sequence
from pathlib import Path, PurePath
from typing import Literal

import numpy as np
from pydantic import BaseModel

from index.collapse import collapse_duplicates
from index.dense import DenseIndex
from index.encoder import Encoder
from index.fusion import rrf, weighted_sum
from index.lexical import LexicalIndex
from index.pending import clear_pending, load_pending, save_pending
from index.store import IndexStore, LazyClauses
from index.tokenize import expand_query, tokenize
from ingest.normalize import normalize_for_matching
from ingest.schema import Clause, Document

Mode = Literal["hybrid", "dense", "lexical"]
MODES = ("hybrid", "dense", "lexical")
MAX_QUERY_CHARS = 1000
MAX_K = 100
CANDIDATES = 50  # each retriever's depth before fusion


class QueryError(ValueError):
    """A query the index cannot answer as asked (empty, too long, unknown mode, bad k)."""


class ModelMismatchError(Exception):
    def __init__(self, built_with: str, configured: str) -> None:
        super().__init__(
            f"this index was built with the embedding model '{built_with}', but the configured model is "
            f"'{configured}': set POLICYQA_MODEL back, or ingest into a new index directory (`policyqa ingest PATH --index-dir DIR`)"
        )


class Filters(BaseModel):
    doc_id: str | None = None
    issuer: str | None = None
    region: str | None = None
    year: int | None = None


class DocumentInfo(BaseModel):
    doc_id: str
    title: str
    source_path: str
    issuer: str | None = None
    doc_number: str | None = None
    date: str | None = None
    region: str | None = None


class AlsoIn(BaseModel):
    clause_id: str
    doc_id: str
    title: str


class Hit(BaseModel):
    clause: Clause
    document: DocumentInfo
    score: float
    dense_score: float | None = None
    dense_rank: int | None = None
    lexical_score: float | None = None
    lexical_rank: int | None = None
    matched_terms: list[str] = []
    also_in: list[AlsoIn] = []


def clause_input(clause: Clause, with_context: bool) -> str:
    """What the encoder and BM25 read for a clause: normalised text, optionally after its title and headings.

    BM25 always reads the context: queries name the place or the document (`青岛幼儿园配建标准`)
    that only the title carries.
    """
    if not with_context:
        return clause.norm_text
    context = " > ".join([clause.doc_title, *clause.heading_path])
    return normalize_for_matching(context) + "\n" + clause.norm_text


# Encoded clauses are checkpointed this many at a time (about 20 s of encoding with ONNX int8).
CHECKPOINT_CLAUSES = 512
_RECORDED_PACKAGES = ("policyqa", "sentence-transformers", "torch", "onnxruntime", "faiss-cpu", "bm25s", "jieba")


def _key(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def document_info(doc: Document) -> DocumentInfo:
    info = DocumentInfo(**doc.model_dump(include=set(DocumentInfo.model_fields)))
    info.source_path = shown_source(doc.source_path)
    return info


def shown_source(path: str) -> str:
    """Where a document came from, as users see it: never the server's folders.

    Relative paths (`data/demo/002.txt`, what `policyqa ingest data/demo` records) stay; absolute
    ones become relative to the working folder, or else keep only the file and its own folder.
    """
    pure = PurePath(path)
    if not pure.is_absolute() and ".." not in pure.parts:
        return path
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return "/".join(pure.parts[-2:])


class ClauseIndex:
    def __init__(
        self,
        documents: list[Document],
        clauses: Sequence[Clause],
        dense: DenseIndex,
        lexical: LexicalIndex,
        encoder: Encoder,
        manifest: dict,
    ) -> None:
        self.documents = {d.doc_id: d for d in documents}
        self._document_infos: dict[str, DocumentInfo] = {}
        self.clauses = clauses
        self.manifest = manifest
        # A lazily loaded store knows its ids without parsing its clauses.
        ids, doc_ids = ((clauses.ids, clauses.doc_ids) if isinstance(clauses, LazyClauses)
                        else ([c.id for c in clauses], [c.doc_id for c in clauses]))
        self._row = {clause_id: i for i, clause_id in enumerate(ids)}
        self._dense = dense
        self._lexical = lexical
        self._encoder = encoder
        self._doc_rows = np.array(doc_ids, dtype=object)
        # Hybrid fusion: "weighted" (min-max normalised scores, dense_weight on the dense side) or "rrf".
        # Weighted 0.5 beat RRF by 0.05 MRR@10 on eval/sets/demo.jsonl (bench/retrieval_decisions.py).
        self.fusion = "weighted"
        self.dense_weight = 0.5
        # Everyday words in a query also ask for their policy terms (index/resources/colloquial_terms.txt).
        self.expand_queries = True

    @classmethod
    def open(cls, index_dir: Path, encoder: Encoder) -> ClauseIndex:
        store = IndexStore(index_dir)
        snapshot = store.load(lazy=True)
        built_with = snapshot.manifest.get("model_id")
        if built_with != encoder.model_id:
            raise ModelMismatchError(str(built_with), encoder.model_id)
        with store.reading(snapshot.folder):
            dense = DenseIndex.load(snapshot.folder / "dense.faiss")
            lexical = LexicalIndex.load(snapshot.folder / "lexical", len(snapshot.clauses))
        return cls(snapshot.documents, snapshot.clauses, dense, lexical, encoder, snapshot.manifest)

    def get_clause(self, clause_id: str) -> Clause | None:
        row = self._row.get(clause_id)
        return None if row is None else self.clauses[row]

    def document_clauses(self, doc_id: str) -> list[Clause]:
        """A document's clauses in reading order (clauses are stored document by document)."""
        return [self.clauses[r] for r in np.flatnonzero(self._doc_rows == doc_id)]

    def neighbours(self, clause_id: str, before: int = 1, after: int = 1) -> tuple[list[Clause], list[Clause]]:
        """The clauses just before and after one clause in its own document."""
        row = self._row[clause_id]
        doc_id = self.clauses[row].doc_id
        previous = [c for c in self.clauses[max(0, row - before) : row] if c.doc_id == doc_id]
        following = [c for c in self.clauses[row + 1 : row + 1 + after] if c.doc_id == doc_id]
        return previous, following

    def _allowed_rows(self, filters: Filters | None) -> np.ndarray | None:
        if filters is None or not any(filters.model_dump().values()):
            return None
        docs = [
            d
            for d in self.documents.values()
            if (filters.doc_id is None or d.doc_id == filters.doc_id)
            and (filters.issuer is None or (d.issuer or "").find(filters.issuer) >= 0)
            and (filters.region is None or (d.region or "").find(filters.region) >= 0)
            and (filters.year is None or (d.date or "").startswith(str(filters.year)))
        ]
        ids = {d.doc_id for d in docs}
        return np.flatnonzero(np.isin(self._doc_rows, list(ids)))

    def search(self, query: str, k: int = 10, mode: Mode = "hybrid", filters: Filters | None = None) -> list[Hit]:
        query = query.strip()
        if not query:
            raise QueryError("the query is empty")
        if len(query) > MAX_QUERY_CHARS:
            raise QueryError(f"the query has {len(query)} characters; the limit is {MAX_QUERY_CHARS}")
        if mode not in MODES:
            raise QueryError(f"unknown mode '{mode}'; use one of {', '.join(MODES)}")
        if not 1 <= k <= MAX_K:
            raise QueryError(f"k must be between 1 and {MAX_K}, not {k}")
        allowed = self._allowed_rows(filters)
        if allowed is not None and len(allowed) == 0:
            return []
        depth = max(CANDIDATES, 3 * k)
        dense: dict[int, tuple[int, float]] = {}
        lexical: dict[int, tuple[int, float]] = {}
        query_tokens = expand_query(query) if self.expand_queries else tokenize(query)
        if mode in ("hybrid", "dense"):
            vector = self._encoder.encode_queries([normalize_for_matching(query)])[0]
            rows, scores = self._dense.search(vector, depth, allowed)
            dense = {int(r): (rank, float(s)) for rank, (r, s) in enumerate(zip(rows, scores, strict=True), 1)}
        if mode in ("hybrid", "lexical"):
            mask = None
            if allowed is not None:
                mask = np.zeros(len(self.clauses), dtype=np.float32)
                mask[allowed] = 1
            rows, scores = self._lexical.search(query_tokens, depth, mask)
            lexical = {int(r): (rank, float(s)) for rank, (r, s) in enumerate(zip(rows, scores, strict=True), 1)}
        if mode == "dense":
            fused = {r: s for r, (_, s) in dense.items()}
        elif mode == "lexical":
            fused = {r: s for r, (_, s) in lexical.items()}
        elif self.fusion == "rrf":
            fused = rrf([list(dense), list(lexical)])
        else:
            fused = weighted_sum(
                {r: s for r, (_, s) in dense.items()}, {r: s for r, (_, s) in lexical.items()}, self.dense_weight
            )
        ranked = sorted(fused, key=lambda r: -fused[r])[: depth]
        groups = collapse_duplicates(ranked, lambda r: self.clauses[r].norm_text, limit=k)
        return [self._hit(row, fused[row], dense, lexical, query_tokens, others) for row, others in groups]

    def document_info(self, doc_id: str) -> DocumentInfo:
        """A document as hits show it, made once per document (its shown path may resolve the file system)."""
        info = self._document_infos.get(doc_id)
        if info is None:
            info = self._document_infos[doc_id] = document_info(self.documents[doc_id])
        return info

    def _hit(self, row, score, dense, lexical, query_tokens, others) -> Hit:
        clause = self.clauses[row]
        terms = sorted({t for t in query_tokens if t in clause.norm_text}, key=len, reverse=True)
        matched = [t for t in terms if not any(t != longer and t in longer for longer in terms)]
        return Hit(
            clause=clause,
            document=self.document_info(clause.doc_id),
            score=score,
            dense_rank=dense.get(row, (None, None))[0],
            dense_score=dense.get(row, (None, None))[1],
            lexical_rank=lexical.get(row, (None, None))[0],
            lexical_score=lexical.get(row, (None, None))[1],
            matched_terms=matched,
            also_in=[
                AlsoIn(clause_id=self.clauses[o].id, doc_id=self.clauses[o].doc_id, title=self.clauses[o].doc_title)
                for o in others
            ],
        )


def update_index(
    index_dir: Path,
    encoder: Encoder,
    add_documents: list[Document],
    add_clauses: list[Clause],
    replace_sources: set[str] = frozenset(),
    remove_doc_ids: set[str] = frozenset(),
    with_context: bool = True,
    on_embedded: Callable[[int, int], None] | None = None,
) -> str:
    """Commit a new version: the old index minus removed/replaced documents plus the new ones.

    Clauses whose embedding input is unchanged reuse their stored vector; only the rest are encoded,
    shortest first, in checkpointed chunks: a stopped ingest run again reuses what it had encoded.
    `on_embedded(chars, total_chars)` reports progress in characters: chunks run shortest first, so
    counting clauses would make an ETA far too hopeful.
    """
    store = IndexStore(index_dir)
    with store.writing():
        return _update_locked(store, encoder, add_documents, add_clauses, replace_sources, remove_doc_ids,
                              with_context, on_embedded)


def _update_locked(store, encoder, add_documents, add_clauses, replace_sources, remove_doc_ids, with_context,
                   on_embedded) -> str:
    index_dir = store.index_dir
    old_docs: list[Document] = []
    old_clauses: list[Clause] = []
    cache: dict[str, np.ndarray] = {}
    if store.exists():  # raises on a damaged folder: a write never starts over a broken index
        snapshot = store.load()
        if snapshot.manifest.get("model_id") == encoder.model_id:
            with store.reading(snapshot.folder):
                vectors = np.load(snapshot.folder / "embeddings.npy")
                keys = json.loads((snapshot.folder / "embed_keys.json").read_text(encoding="utf-8"))
                cache = dict(zip(keys, vectors, strict=True))
        dropped = {d.doc_id for d in snapshot.documents if d.source_path in replace_sources} | set(remove_doc_ids)
        old_docs = [d for d in snapshot.documents if d.doc_id not in dropped]
        old_clauses = [c for c in snapshot.clauses if c.doc_id not in dropped]
    cache.update(load_pending(index_dir, encoder.model_id))
    documents = old_docs + add_documents
    clauses = old_clauses + add_clauses
    inputs = [clause_input(c, with_context) for c in clauses]
    keys = [_key(t) for t in inputs]
    missing = {key: text for key, text in zip(keys, inputs, strict=True) if key not in cache}
    todo = sorted(missing, key=lambda key: len(missing[key]))
    total_chars = sum(map(len, missing.values()))
    for start in range(0, len(todo), CHECKPOINT_CLAUSES):
        chunk = todo[start : start + CHECKPOINT_CLAUSES]
        fresh = encoder.encode_passages([missing[key] for key in chunk])
        save_pending(index_dir, encoder.model_id, chunk, fresh)
        cache.update(zip(chunk, fresh, strict=True))
        if on_embedded:
            on_embedded(sum(len(missing[key]) for key in chunk), total_chars)
    vectors = np.stack([cache[key] for key in keys]) if keys else np.empty((0, encoder.dim), dtype=np.float32)

    def write(folder: Path) -> dict:
        np.save(folder / "embeddings.npy", vectors.astype(np.float32))
        (folder / "embed_keys.json").write_text(json.dumps(keys), encoding="utf-8")
        DenseIndex.build(vectors).save(folder / "dense.faiss")
        lexical_texts = inputs if with_context else [clause_input(c, True) for c in clauses]
        LexicalIndex.build([tokenize(text) for text in lexical_texts]).save(folder / "lexical")
        return {
            "model_id": encoder.model_id,
            "dimensions": encoder.dim,
            "embedding_context": with_context,
            "embedded_now": len(todo),
            "reused_embeddings": len(keys) - len(todo),
            "encoder_variant": getattr(encoder, "variant", None),
            "versions": {name: importlib.metadata.version(name) for name in _RECORDED_PACKAGES},
        }

    version = store.commit(documents, clauses, write)
    clear_pending(index_dir)
    return version
