"""An exported sentence-transformers model run by onnxruntime and `tokenizers` alone, without torch.

sentence-transformers' ONNX backend imports torch and transformers even though onnxruntime does the
work: 410 MB of a server's memory for nothing (measured 2026-12-03: the default model loaded through
sentence-transformers 922 MB RSS, this way 487 MB). This runs the same three modules the model
directory declares (Transformer -> mean or CLS pooling -> Normalize) the way sentence-transformers
does: prompt prepended, texts batched longest first, truncated to `max_seq_length`; the vectors equal
sentence-transformers' (tests/test_encoder_variants.py). A model directory declaring anything else is
run by sentence-transformers instead (`OnnxSentenceModel.supports`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

PLAIN_MODULES = ["sentence_transformers.models.Transformer", "sentence_transformers.models.Pooling",
                 "sentence_transformers.models.Normalize"]
POOLING_MODES = {"pooling_mode_mean_tokens": "mean", "pooling_mode_cls_token": "cls"}


def _read_json(path: Path) -> dict | list:
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def _pooling_mode(model_dir: Path) -> str | None:
    """"mean" or "cls" when that is the only pooling the model asks for (and prompts are pooled too)."""
    modules = _read_json(model_dir / "modules.json")
    if [m.get("type") for m in modules] != PLAIN_MODULES:
        return None
    config = _read_json(model_dir / modules[1]["path"] / "config.json")
    chosen = [mode for key, mode in POOLING_MODES.items() if config.get(key)]
    others = [k for k, v in config.items() if k.startswith("pooling_mode_") and v and k not in POOLING_MODES]
    if len(chosen) != 1 or others or not config.get("include_prompt", True):
        return None
    return chosen[0]


class OnnxSentenceModel:
    """The subset of `SentenceTransformer` the encoder uses: `prompts`, `get_embedding_dimension()`, `encode()`."""

    @staticmethod
    def supports(model_dir: Path) -> bool:
        return (model_dir / "tokenizer.json").is_file() and _pooling_mode(model_dir) is not None

    def __init__(self, model_dir: Path, file_name: str, session_options=None) -> None:
        import onnxruntime
        from tokenizers import Tokenizer

        self._pooling = _pooling_mode(model_dir)
        self.prompts: dict[str, str] = _read_json(model_dir / "config_sentence_transformers.json").get("prompts", {})
        max_length = _read_json(model_dir / "sentence_bert_config.json").get("max_seq_length", 512)
        pad_token = _read_json(model_dir / "tokenizer_config.json").get("pad_token", "<pad>")
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.enable_truncation(max_length)
        pad_id = self._tokenizer.token_to_id(pad_token)
        self._tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=pad_token)
        self._session = onnxruntime.InferenceSession(
            str(model_dir / file_name), sess_options=session_options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._dim = self._session.get_outputs()[0].shape[-1]

    def get_embedding_dimension(self) -> int:
        return int(self._dim)

    def _embed_batch(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask}
        if "token_type_ids" in self._inputs:
            feeds["token_type_ids"] = np.zeros_like(ids)
        hidden = self._session.run(None, feeds)[0]
        if self._pooling == "cls":
            return hidden[:, 0]
        weights = mask[..., None].astype(np.float32)
        return (hidden * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)

    def encode(self, texts: list[str], prompt_name: str | None = None, batch_size: int = 32,
               normalize_embeddings: bool = False) -> np.ndarray:
        """Longest texts first, as sentence-transformers batches them: int8 models quantise activations per batch,
        so the same batches give the same vectors."""
        prompt = self.prompts.get(prompt_name, "") if prompt_name else ""
        order = np.argsort([-len(text) for text in texts])
        sorted_texts = [prompt + texts[i] for i in order]
        batches = [self._embed_batch(sorted_texts[start:start + batch_size])
                   for start in range(0, len(sorted_texts), batch_size)]
        vectors = np.concatenate(batches) if batches else np.empty((0, self._dim), dtype=np.float32)
        if normalize_embeddings:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return vectors[np.argsort(order)].astype(np.float32)
