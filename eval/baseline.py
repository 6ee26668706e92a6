"""The baseline a user would otherwise build: fixed-size chunks, the same embedding model in FAISS,
and BM25 over plain jieba tokens, fused by RRF (Langchain-Chatchat's recipe, see ANCHORS.md).

It reads the same cleaned documents as our index, so the comparison isolates what clause
chunking, context in the embedding, bigrams/dictionary tokens and our fusion add.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import bm25s
import jieba
import numpy as np
from langchain_text_splitters import RecursiveCharacterTextSplitter

from embedding.encoder import Encoder
from eval.runner import Retrieved, Searcher
from index.dense import DenseIndex
from index.fusion import rrf
from index.pipeline import query_vectors
from ingest.normalize import normalize_for_matching
from ingest.schema import Document

CHUNK_CHARS = 500
CHUNK_OVERLAP = 50
# Chatchat's separators: paragraphs, lines, then Chinese sentence and clause punctuation.
SEPARATORS = ["\n\n", "\n", "。", "！", "？", "；", "，", ""]


def fixed_size_chunks(documents: list[Document]) -> list[Retrieved]:
    splitter = RecursiveCharacterTextSplitter(
        chunk_size=CHUNK_CHARS, chunk_overlap=CHUNK_OVERLAP, separators=SEPARATORS, keep_separator="end"
    )
    return [
        Retrieved(item_id=f"{doc.doc_id}@{i}", text=chunk, doc_id=doc.doc_id)
        for doc in documents
        for i, chunk in enumerate(splitter.split_text(doc.text))
    ]


def _jieba_tokens(text: str) -> list[str]:
    return [w for w in jieba.lcut_for_search(normalize_for_matching(text)) if w.strip()]


def _cached_vectors(chunks: list[Retrieved], encoder: Encoder, cache_dir: Path | None) -> np.ndarray:
    key = hashlib.sha1("\n".join([encoder.model_id, *(c.text for c in chunks)]).encode()).hexdigest()[:16]
    path = cache_dir / f"baseline-{key}.npy" if cache_dir else None
    if path and path.is_file():
        return np.load(path)
    vectors = encoder.encode_passages([normalize_for_matching(c.text) for c in chunks])
    if path:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.save(path, vectors)
    return vectors


def baseline_searcher(documents: list[Document], encoder: Encoder, cache_dir: Path | None = None) -> Searcher:
    chunks = fixed_size_chunks(documents)
    dense = DenseIndex.build(_cached_vectors(chunks, encoder, cache_dir))
    jieba.setLogLevel(logging.WARNING)
    lexical = bm25s.BM25()
    lexical.index([_jieba_tokens(c.text) or ["\u2205"] for c in chunks], show_progress=False)

    def search(query: str, k: int, mode: str) -> list[Retrieved]:
        depth = max(50, 3 * k)
        dense_rows: list[int] = []
        lexical_rows: list[int] = []
        if mode in ("dense", "hybrid"):
            rows, _ = dense.search(query_vectors(encoder, [query])[0], depth)
            dense_rows = rows.tolist()
        if mode in ("lexical", "hybrid"):
            tokens = [t for t in _jieba_tokens(query) if t in lexical.vocab_dict]
            if tokens:
                rows, scores = lexical.retrieve([tokens], k=min(depth, len(chunks)), show_progress=False, n_threads=1)
                lexical_rows = [int(r) for r, s in zip(rows[0], scores[0], strict=True) if s > 0]
        ranked = {"dense": dense_rows, "lexical": lexical_rows}.get(mode)
        if ranked is None:
            fused = rrf([dense_rows, lexical_rows])
            ranked = sorted(fused, key=lambda r: -fused[r])
        return [chunks[r] for r in ranked[:k]]

    return search
