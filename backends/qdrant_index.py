"""Searching a Qdrant collection: the same hits as the local backend (backends/qdrant_store.py has the layout).

Both candidate lists (dense and BM25, each as deep as the local backend's) come back from one batched
request and go through the project's own fusion, near-duplicate collapse and highlights
(index/pipeline.py): server-side RRF would rank differently from the local backend's
weighted fusion, which measured better (bench/retrieval_decisions.py). Filters are resolved to document
ids against the documents held here, with the local backend's rules (substring issuer and region).
"""

from __future__ import annotations

from collections.abc import Iterator

from qdrant_client import models

from backends.qdrant_store import DENSE, LEXICAL, LIVE_CLAUSES, QdrantBackend, must, point_id, query_terms_vector
from embedding.encoder import Encoder
from index.pipeline import SearchPipeline, query_vectors
from index.types import Candidates, DocumentInfo, Filters, Hit, Mode, cached_document_info, filtered_documents
from ingest.schema import Clause, Document


class QdrantClauses:
    """The live clauses of a collection: counted by Qdrant, read by scrolling."""

    def __init__(self, backend: QdrantBackend, collection: str) -> None:
        self._backend, self._collection = backend, collection

    def __len__(self) -> int:
        return self._backend.call("count", self._collection, count_filter=must(**LIVE_CLAUSES), exact=True).count

    def __iter__(self) -> Iterator[Clause]:
        for point in self._backend.scroll(self._collection, must(**LIVE_CLAUSES)):
            yield Clause.model_validate(point.payload["clause"])


class QdrantIndex:
    """Implements backends/base.py's `SearchIndex` over one collection, as it was when opened."""

    def __init__(self, backend: QdrantBackend, collection: str, encoder: Encoder,
                 pipeline: SearchPipeline | None = None) -> None:
        self._backend, self._collection, self._encoder = backend, collection, encoder
        self.pipeline = pipeline or SearchPipeline()
        meta = backend.meta(collection) or {}
        self.manifest = {k: v for k, v in meta.items() if k not in ("kind", "pending")}
        live = sorted(backend.live_documents(collection).items())
        self.documents: dict[str, Document] = {d: Document.model_validate(p["document"]) for d, (_, p) in live}
        self._writes = {doc_id: write for doc_id, (write, _) in live}  # the copy of each document this view shows
        self._clause_counts = {doc_id: payload["clauses"] for doc_id, (_, payload) in live}
        self._document_infos: dict[str, DocumentInfo] = {}
        self.clauses = QdrantClauses(backend, collection)

    def _clauses_where(self, **fields) -> list[Clause]:
        """Live clauses matching the fields, of the document's current write only, in reading order."""
        found = [p.payload for p in self._backend.scroll(self._collection, must(**LIVE_CLAUSES, **fields))]
        current = [p for p in found if self._writes.get(p["doc_id"]) == p["write"]]
        return sorted((Clause.model_validate(p["clause"]) for p in current), key=lambda c: c.position)

    def get_clause(self, clause_id: str) -> Clause | None:
        """A key lookup: the point of this clause in its document's current write (no filtered scroll)."""
        write = self._writes.get(clause_id.split("#", 1)[0])
        if write is None:
            return None
        found = self._backend.call("retrieve", self._collection, [point_id(write, clause_id)], with_payload=True)
        live = [p for p in found if p.payload.get("state") == LIVE_CLAUSES["state"]]
        return Clause.model_validate(live[0].payload["clause"]) if live else None

    def document_clauses(self, doc_id: str) -> list[Clause]:
        return self._clauses_where(doc_id=doc_id) if doc_id in self.documents else []

    def clause_count(self, doc_id: str) -> int:
        return self._clause_counts.get(doc_id, 0)

    def neighbours(self, clause_id: str, before: int = 1, after: int = 1) -> tuple[list[Clause], list[Clause]]:
        clause = self.get_clause(clause_id)
        clauses = self.document_clauses(clause.doc_id)
        at = next(i for i, c in enumerate(clauses) if c.id == clause_id)
        return clauses[max(0, at - before):at], clauses[at + 1:at + 1 + after]

    def document_info(self, doc_id: str) -> DocumentInfo:
        return cached_document_info(self._document_infos, self.documents, doc_id)

    def search(self, query: str, k: int = 10, mode: Mode = "hybrid", filters: Filters | None = None,
               rerank: bool = True) -> list[Hit]:
        return self.pipeline.search(self, query, k, mode, filters, rerank)

    def candidates(self, query: str, terms: list[str], depth: int, mode: Mode, filters: Filters | None) -> Candidates:
        allowed = filtered_documents(self.documents.values(), filters)
        if allowed is not None and not allowed:
            return Candidates.none()
        conditions = {**LIVE_CLAUSES, **({"doc_id": [d.doc_id for d in allowed]} if allowed is not None else {})}
        requests: dict[str, models.QueryRequest] = {}
        if mode in ("hybrid", "dense"):
            vector = query_vectors(self._encoder, [query])[0]
            requests["dense"] = models.QueryRequest(query=vector.tolist(), using=DENSE, limit=depth,
                                                    filter=must(**conditions), with_payload=True)
        sparse = query_terms_vector(terms)
        if mode in ("hybrid", "lexical") and sparse.indices:
            requests["lexical"] = models.QueryRequest(query=sparse, using=LEXICAL, limit=depth,
                                                      filter=must(**conditions), with_payload=True)
        answers = self._backend.call("query_batch_points", self._collection, requests=list(requests.values()))
        clauses: dict[str, Clause] = {}
        ranked = {"dense": {}, "lexical": {}}
        for name, answer in zip(requests, answers, strict=True):
            # Only the copy of each document this view shows (a replacement may be finishing).
            shown = [p for p in answer.points if self._writes.get(p.payload["doc_id"]) == p.payload["write"]]
            for rank, point in enumerate(shown, 1):
                clauses.setdefault(point.id, Clause.model_validate(point.payload["clause"]))
                ranked[name][point.id] = (rank, float(point.score))
        return Candidates(ranked["dense"], ranked["lexical"], clauses.__getitem__)
