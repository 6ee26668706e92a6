"""The Qdrant backend's storage: one collection behind an alias, written all or nothing for searches.

Collection (docs/scale-out.md has the sizing): every clause is a point with a dense vector ("dense",
cosine, optionally int8-quantised) and a sparse one ("lexical", Qdrant's `idf` modifier) made from
this project's own tokens (index/tokenize.py: jieba, bigrams, dictionaries), so Qdrant and the local
backend score the same terms; its payload is the clause and the fields filters and writes use. Each
document is a point without vectors carrying the Document; one more point holds the index's
metadata (model, dimensions, BM25's average clause length, the unfinished write if any).

BM25 as the local backend computes it (bm25s's lucene variant): Qdrant multiplies the query's term
counts by IDF, ln(1 + (N - df + 0.5) / (df + 0.5)), and by the stored value tf / (tf + k1 (1 - b + b
len / avg_len)). avg_len is fixed when the collection is made (the local backend recomputes it on
every version): scores drift from the local backend's as far as the mean clause length drifts.

A write (`QdrantBackend.write`): its points go in as `staged`, invisible to searches; the write is
recorded in the metadata point; its points turn `live` in one filtered update, then the points of the
documents it replaces or removes are deleted, then the record is cleared. A process killed before the
record leaves staged points, which the next write deletes; killed after it, the next write first
finishes it. One process writes to a collection at a time (the server's write queue, or one CLI
command): a second writer at the same moment is not detected, and would delete the first's staged points. Between the last two steps a replaced document is briefly visible twice (identical
clauses are collapsed into one hit). Writes are serialised by the write service; in local mode every
client call also takes a lock, because Qdrant's local mode is plain Python data that threads may not
share while it changes.
"""

from __future__ import annotations

import contextlib
import hashlib
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from qdrant_client import QdrantClient, models

from backends.base import BackendError
from embedding.encoder import Encoder
from index.clause_text import clause_input
from index.lexical import K1, B
from index.pipeline import SearchPipeline
from index.tokenize import tokenize
from ingest.schema import Clause, Document
from policyqa.settings import Settings
from storage.pending import clear_pending, load_pending
from storage.segment import DocumentKey
from writes.commit import embed_key, embed_missing

DENSE, LEXICAL = "dense", "lexical"
NAMESPACE = uuid.UUID("6f1f2a43-3c1e-4f0a-9a57-0c8e4b7d2a10")
META_ID = str(uuid.uuid5(NAMESPACE, "meta"))
UPSERT_BATCH = 256
KEYWORD_FIELDS = ("kind", "state", "write", "doc_id", "clause_id", "source_path", "issuer", "region")
INTEGER_FIELDS = ("year", "position")
CONNECT_TIMEOUT_S = 10


class QdrantError(BackendError):
    """Qdrant cannot be used as configured; the message says what to do."""


def term_id(term: str) -> int:
    """A term's sparse dimension: 32 bits of its hash (no vocabulary to share between writers; collisions
    are rare and only merge two terms' counts)."""
    return int.from_bytes(hashlib.blake2b(term.encode("utf-8"), digest_size=4).digest(), "little")


def clause_terms(tokens: list[str], avg_length: float) -> models.SparseVector:
    """A clause's stored BM25 term weights: tf / (tf + k1 (1 - b + b len / avg_len))."""
    norm = K1 * (1 - B + B * len(tokens) / avg_length)
    counts = Counter(term_id(t) for t in tokens)
    return models.SparseVector(indices=list(counts), values=[tf / (tf + norm) for tf in counts.values()])


def query_terms_vector(tokens: list[str]) -> models.SparseVector:
    """Repeated query tokens count again, as in the local BM25."""
    counts = Counter(term_id(t) for t in tokens)
    return models.SparseVector(indices=list(counts), values=[float(n) for n in counts.values()])


def point_id(write: str, key: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{write}\n{key}"))


def must(**fields) -> models.Filter:
    """Points whose payload fields equal the values (a list: any of them)."""
    return models.Filter(must=[
        models.FieldCondition(key=key, match=models.MatchAny(any=value) if isinstance(value, list)
                              else models.MatchValue(value=value))
        for key, value in fields.items()
    ])


LIVE_CLAUSES = {"kind": "clause", "state": "live"}
LIVE_DOCUMENTS = {"kind": "document", "state": "live"}


def year_of(doc: Document) -> int | None:
    return int(doc.date[:4]) if doc.date and doc.date[:4].isdigit() else None


class QdrantBackend:
    """Implements backends/base.py's `Backend` over a Qdrant collection alias."""

    def __init__(self, client: QdrantClient, alias: str, work_dir: Path, where: str, local: bool,
                 quantization: bool = False, shards: int | None = None, replicas: int | None = None) -> None:
        self.client, self.alias, self.work_dir, self.where = client, alias, Path(work_dir), where
        self.quantization, self.shards, self.replicas = quantization, shards, replicas
        self.local = local
        self._lock = threading.RLock() if local else contextlib.nullcontext()

    @classmethod
    def from_settings(cls, settings: Settings, work_dir: Path) -> QdrantBackend:
        if bool(settings.qdrant_url) == bool(settings.qdrant_path):
            raise QdrantError("POLICYQA_BACKEND=qdrant needs exactly one of POLICYQA_QDRANT_URL (a server or "
                              "cluster) and POLICYQA_QDRANT_PATH (the embedded local mode)")
        if settings.qdrant_path:
            try:
                client = QdrantClient(path=str(settings.qdrant_path))
            except RuntimeError as exc:
                if "already accessed" not in str(exc):
                    raise
                raise QdrantError(f"the Qdrant folder {settings.qdrant_path} is open in another process: Qdrant's local "
                                  "mode allows one process per folder. Stop the other policyqa (server or command), "
                                  "or run a Qdrant server and set POLICYQA_QDRANT_URL") from None
            where = f"Qdrant folder {settings.qdrant_path}, collection {settings.qdrant_collection}"
        else:
            client = QdrantClient(url=settings.qdrant_url, api_key=settings.qdrant_api_key, timeout=CONNECT_TIMEOUT_S)
            try:
                client.get_collections()
            except Exception as exc:  # noqa: BLE001 - httpx, grpc and Qdrant's own errors: all mean "not usable"
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise QdrantError(f"cannot reach Qdrant at {settings.qdrant_url}: {reason}. Check "
                                  "POLICYQA_QDRANT_URL and POLICYQA_QDRANT_API_KEY, and that the server runs") from None
            where = f"Qdrant {settings.qdrant_url}, collection {settings.qdrant_collection}"
        return cls(client, settings.qdrant_collection, work_dir, where, local=bool(settings.qdrant_path),
                   quantization=settings.qdrant_quantization, shards=settings.qdrant_shards,
                   replicas=settings.qdrant_replicas)

    # -- what the index reads -------------------------------------------------------------------------

    def call(self, method: str, *args, **kwargs):
        """A client call, under the local mode's lock."""
        with self._lock:
            return getattr(self.client, method)(*args, **kwargs)

    def collection(self) -> str | None:
        """The collection the alias names (or a collection of that name), None if there is none."""
        aliases = {a.alias_name: a.collection_name for a in self.call("get_aliases").aliases}
        if self.alias in aliases:
            return aliases[self.alias]
        return self.alias if self.call("collection_exists", self.alias) else None

    def meta(self, collection: str | None = None) -> dict | None:
        collection = collection or self.collection()
        if collection is None:
            return None
        found = self.call("retrieve", collection, [META_ID], with_payload=True)
        return dict(found[0].payload) if found else None

    def scroll(self, collection: str, flt: models.Filter, with_vectors: bool = False) -> Iterator[models.Record]:
        offset = None
        while True:
            points, offset = self.call("scroll", collection, scroll_filter=flt, limit=1024, offset=offset,
                                       with_payload=True, with_vectors=[DENSE] if with_vectors else False)
            yield from points
            if offset is None:
                return

    def live_documents(self, collection: str) -> dict[str, tuple[str, dict]]:
        """doc id -> (write, payload) of the live document points; the newest write wins while a replacement
        finishes."""
        documents: dict[str, tuple[str, dict]] = {}
        for point in self.scroll(collection, must(**LIVE_DOCUMENTS)):
            doc_id, write = point.payload["doc_id"], point.payload["write"]
            if doc_id not in documents or documents[doc_id][0] < write:
                documents[doc_id] = (write, point.payload)
        return documents

    # -- Backend --------------------------------------------------------------------------------------

    def exists(self) -> bool:
        collection = self.collection()
        return collection is not None and self.meta(collection) is not None

    def is_empty(self) -> bool:
        return self.collection() is None

    def version(self) -> str | None:
        """The collection the alias names and its last finished write (a migration switches the former)."""
        collection = self.collection()
        meta = self.meta(collection) if collection is not None else None
        return None if meta is None else f"{collection}/{meta.get('version')}"

    def open(self, encoder: Encoder, previous=None, pipeline: SearchPipeline | None = None):
        from backends.qdrant_index import QdrantIndex

        collection = self.collection()
        self._check_model(self.meta(collection), encoder, collection)
        return QdrantIndex(self, collection, encoder, pipeline)

    def document_keys(self) -> list[DocumentKey]:
        collection = self.collection()
        if collection is None:
            return []
        return [DocumentKey(p["doc_id"], p["source_path"], p["sha256"]) for _, p in self.live_documents(collection).values()]

    def merge(self) -> None:
        """Qdrant merges its own segments (its optimizer); nothing to do here."""
        return

    def write(self, encoder: Encoder, add_documents: list[Document], add_clauses: list[Clause],
              replace_sources=frozenset(), remove_doc_ids=frozenset(), with_context: bool = True,
              on_embedded=None, merge: bool = True) -> str:
        write = f"{time.time_ns():020d}"  # sortable: the newest write of a document wins while one finishes
        inputs = [clause_input(c, with_context) for c in add_clauses]
        tokens = [tokenize(clause_input(c, True)) for c in add_clauses]
        collection = self.collection()
        if collection is None:
            collection = self.create({"model_id": encoder.model_id, "dimensions": encoder.dim,
                                      "embedding_context": with_context, "encoder_variant": getattr(encoder, "variant", None),
                                      "avg_length": float(np.mean([len(t) for t in tokens] or [1]))})
        meta = self.meta(collection)
        self._check_model(meta, encoder, collection)
        self._recover(collection)
        documents = self.live_documents(collection)
        new_ids = {d.doc_id for d in add_documents}
        dropped = sorted(d for d, (_, p) in documents.items()
                         if p["source_path"] in replace_sources or d in new_ids or d in remove_doc_ids)
        reusable = self._vectors_of(collection, [d for d in dropped if d not in remove_doc_ids])
        reusable.update(load_pending(self.work_dir, encoder.model_id))
        keys = [embed_key(t) for t in inputs]
        vectors, embedded_now = embed_missing(self.work_dir, encoder, inputs, keys, reusable, on_embedded)
        documents_by_id = {d.doc_id: d for d in add_documents}
        self.upsert(collection, [
            self.clause_point(write, c, v, k, t, documents_by_id[c.doc_id], meta["avg_length"], state="staged")
            for c, v, k, t in zip(add_clauses, vectors, keys, tokens, strict=True)
        ])
        clause_counts = Counter(c.doc_id for c in add_clauses)
        self.upsert(collection, [self.document_point(write, d, clause_counts[d.doc_id], state="staged")
                                 for d in add_documents])
        self.call("set_payload", collection, {"pending": {"write": write, "drop": dropped}}, points=[META_ID], wait=True)
        self._finish(collection, write, dropped, {"embedded_now": embedded_now,
                                                  "reused_embeddings": len(keys) - embedded_now})
        clear_pending(self.work_dir)
        return write

    # -- writing --------------------------------------------------------------------------------------

    def create(self, fields: dict, name: str | None = None) -> str:
        """A new collection (named after the alias and the time) with its metadata point (`fields`: model_id,
        dimensions, embedding_context, encoder_variant, avg_length, ...); the alias is pointed at it unless
        `name` is given (a migration switches the alias itself when it is done)."""
        collection = name or f"{self.alias}-{time.time_ns():x}"
        quantization = models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
            type=models.ScalarType.INT8, always_ram=True)) if self.quantization else None
        # Payload (clause texts) on disk on a server: it is read only for the points a search returns.
        self.call("create_collection", collection,
                  vectors_config={DENSE: models.VectorParams(size=fields["dimensions"], distance=models.Distance.COSINE,
                                                             on_disk=True if self.quantization else None)},
                  sparse_vectors_config={LEXICAL: models.SparseVectorParams(modifier=models.Modifier.IDF)},
                  quantization_config=quantization, on_disk_payload=not self.local,
                  shard_number=self.shards, replication_factor=self.replicas)
        if not self.local:  # the local mode has no payload indexes (it warns about each)
            for field in KEYWORD_FIELDS:
                self.call("create_payload_index", collection, field, models.PayloadSchemaType.KEYWORD)
            for field in INTEGER_FIELDS:
                self.call("create_payload_index", collection, field, models.PayloadSchemaType.INTEGER)
        payload = {"kind": "meta", "created": datetime.now(UTC).isoformat(timespec="seconds"), "version": None,
                   "pending": None, **fields}
        self.call("upsert", collection, [models.PointStruct(id=META_ID, vector={}, payload=payload)], wait=True)
        if name is None:
            self.switch_alias(collection)
        return collection

    def switch_alias(self, collection: str) -> None:
        """Point the alias at `collection` in one operation; the collection it named before is dropped."""
        before = self.collection()
        operations = [models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=self.alias))] \
            if before is not None and before != self.alias else []
        operations.append(models.CreateAliasOperation(create_alias=models.CreateAlias(
            collection_name=collection, alias_name=self.alias)))
        self.call("update_collection_aliases", change_aliases_operations=operations)
        if before is not None and before not in (collection, self.alias):
            self.call("delete_collection", before)

    @staticmethod
    def clause_point(write: str, clause: Clause, vector: np.ndarray, key: str, tokens: list[str], document: Document,
                     avg_length: float, state: str) -> models.PointStruct:
        return models.PointStruct(
            id=point_id(write, clause.id),
            vector={DENSE: np.asarray(vector, dtype=np.float32).tolist(), LEXICAL: clause_terms(tokens, avg_length)},
            payload={"kind": "clause", "state": state, "write": write, "doc_id": clause.doc_id,
                     "clause_id": clause.id, "position": clause.position, "embed_key": key,
                     "issuer": document.issuer, "region": document.region, "year": year_of(document),
                     "clause": clause.model_dump(mode="json")},
        )

    @staticmethod
    def document_point(write: str, document: Document, clauses: int, state: str) -> models.PointStruct:
        return models.PointStruct(
            id=point_id(write, "document\n" + document.doc_id), vector={},
            payload={"kind": "document", "state": state, "write": write, "doc_id": document.doc_id, "clauses": clauses,
                     "source_path": document.source_path, "sha256": document.sha256, "issuer": document.issuer,
                     "region": document.region, "year": year_of(document), "document": document.model_dump(mode="json")},
        )

    def upsert(self, collection: str, points: list[models.PointStruct]) -> None:
        for start in range(0, len(points), UPSERT_BATCH):
            self.call("upsert", collection, points[start:start + UPSERT_BATCH], wait=True)

    def _vectors_of(self, collection: str, doc_ids: list[str]) -> dict[str, np.ndarray]:
        """Vectors of the live clauses of documents about to be replaced, by what was embedded."""
        if not doc_ids:
            return {}
        return {p.payload["embed_key"]: np.asarray(p.vector[DENSE], dtype=np.float32)
                for p in self.scroll(collection, must(**LIVE_CLAUSES, doc_id=doc_ids), with_vectors=True)}

    def _finish(self, collection: str, write: str, dropped: list[str], fields: dict | None = None) -> None:
        """Make a recorded write live, delete what it replaced, clear the record (idempotent: recovery reruns it)."""
        self.call("set_payload", collection, {"state": "live"}, points=must(write=write), wait=True)
        if dropped:
            self.call("delete", collection, points_selector=models.Filter(
                must=[models.FieldCondition(key="doc_id", match=models.MatchAny(any=dropped))],
                must_not=[models.FieldCondition(key="write", match=models.MatchValue(value=write))]), wait=True)
        counts = {"documents": self.call("count", collection, count_filter=must(**LIVE_DOCUMENTS), exact=True).count,
                  "clauses": self.call("count", collection, count_filter=must(**LIVE_CLAUSES), exact=True).count}
        self.call("set_payload", collection, {"pending": None, "version": write, **counts, **(fields or {})},
                  points=[META_ID], wait=True)

    def _recover(self, collection: str) -> None:
        """Finish a write that was recorded, drop the points of one that was not."""
        pending = (self.meta(collection) or {}).get("pending")
        if pending:
            self._finish(collection, pending["write"], pending["drop"])
        self.call("delete", collection, points_selector=must(state="staged"), wait=True)

    def _check_model(self, meta: dict | None, encoder: Encoder, collection: str | None) -> None:
        if meta is None:
            from storage.store import IndexMissingError

            raise IndexMissingError(self.where)
        if meta.get("model_id") != encoder.model_id or meta.get("dimensions") != encoder.dim:
            raise QdrantError(
                f"the Qdrant collection {collection} was built with the embedding model '{meta.get('model_id')}' "
                f"({meta.get('dimensions')} dimensions), but the configured model is '{encoder.model_id}' "
                f"({encoder.dim} dimensions): set POLICYQA_MODEL back, or choose another POLICYQA_QDRANT_COLLECTION"
            )
