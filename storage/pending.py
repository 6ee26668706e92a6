"""Embeddings made by an ingest that has not committed yet, kept so a stopped ingest can resume.

Encoding is most of an ingest's time (a whole corpus takes minutes to hours). Each encoded chunk
is written as a shard under `<index_dir>/pending/` (to a temporary name, then renamed, so a
kill -9 leaves whole shards only). Running the same ingest again reads them back and encodes only
what is missing; the commit deletes them. Shards are keyed by the encoder's model id: another
model's vectors are never reused.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

import numpy as np

PENDING_DIR = "pending"


def _model_dir(index_dir: Path, model_id: str) -> Path:
    return Path(index_dir) / PENDING_DIR / hashlib.sha1(model_id.encode("utf-8")).hexdigest()[:16]


def load_pending(index_dir: Path, model_id: str) -> dict[str, np.ndarray]:
    """{embedding key: vector} from the shards an unfinished ingest left for this model."""
    vectors: dict[str, np.ndarray] = {}
    folder = _model_dir(index_dir, model_id)
    for shard in sorted(folder.glob("*.npz")) if folder.is_dir() else []:
        try:
            with np.load(shard) as data:
                vectors.update(zip(data["keys"].tolist(), data["vectors"], strict=True))
        except (OSError, ValueError, KeyError):  # a shard from a full disk or a foreign file: encode again
            continue
    return vectors


def save_pending(index_dir: Path, model_id: str, keys: list[str], vectors: np.ndarray) -> None:
    folder = _model_dir(index_dir, model_id)
    folder.mkdir(parents=True, exist_ok=True)
    name = f"{len(list(folder.glob('*.npz'))):06d}-{os.getpid()}"
    partial = folder / f".{name}.partial.npz"
    np.savez(partial, keys=np.array(keys), vectors=vectors.astype(np.float32))
    os.replace(partial, folder / f"{name}.npz")


def clear_pending(index_dir: Path) -> None:
    shutil.rmtree(Path(index_dir) / PENDING_DIR, ignore_errors=True)
