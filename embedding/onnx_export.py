"""ONNX exports of a model directory (a sentence encoder or a reranker): fp32, and int8 by dynamic quantisation.

Made once, next to the weights (`<model>/onnx/`), and reused: encoding through onnxruntime is
2-4x faster than torch on these CPUs (../shared/MODELS.md). The int8 kernels are chosen from
the CPU's flags: AVX-512 VNNI where it has them, AVX2 otherwise (ARM64 on aarch64).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ONNX_DIR = "onnx"
FP32_FILE = f"{ONNX_DIR}/model.onnx"


class OnnxExportError(RuntimeError):
    """The model cannot be exported (not a local directory, or the export failed)."""


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def quantisation_target(flags: set[str] | None = None, machine: str | None = None) -> str:
    """The sentence-transformers quantisation config for this CPU."""
    if (machine or platform.machine()) in ("aarch64", "arm64"):
        return "arm64"
    flags = cpu_flags() if flags is None else flags
    return "avx512_vnni" if "avx512_vnni" in flags else "avx2"


def int8_file(target: str) -> str:
    return f"{ONNX_DIR}/model_qint8_{target}.onnx"


def is_cross_encoder(model_dir: Path) -> bool:
    """A sequence classifier (a reranker) rather than a sentence encoder, by its config."""
    try:
        config = json.loads((model_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return any(a.endswith("ForSequenceClassification") for a in config.get("architectures") or [])


def _load_onnx(model_dir: Path, file_name: str | None = None):
    from sentence_transformers import CrossEncoder, SentenceTransformer

    kind = CrossEncoder if is_cross_encoder(model_dir) else SentenceTransformer
    kwargs = {"file_name": file_name} if file_name else {"export": True}
    return kind(str(model_dir), device="cpu", backend="onnx", model_kwargs=kwargs, local_files_only=True)


def _move_into_place(built: Path, model_dir: Path, file_name: str) -> None:
    """os.replace into model_dir/onnx/: a killed export never leaves a half-written model file."""
    target = model_dir / file_name
    target.parent.mkdir(exist_ok=True)
    staged = target.with_name(f".{target.name}.partial")
    shutil.copyfile(built, staged)
    os.replace(staged, target)


def ensure_onnx(model_dir: Path, variant: str) -> str:
    """The ONNX file (relative to model_dir) for `onnx` or `onnx-int8`, exported first if missing.

    The export runs in a child process: it needs torch and transformers, which the caller (a server
    encoding through onnxruntime alone) would otherwise keep in memory for good.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise OnnxExportError(
            f"the ONNX encoders need a local model directory; {model_dir} is not one "
            "(set POLICYQA_ENCODER=torch for a model from a hub)"
        )
    wanted = FP32_FILE if variant == "onnx" else int8_file(quantisation_target())
    if not (model_dir / wanted).is_file():
        done = subprocess.run([sys.executable, "-m", "embedding.onnx_export", str(model_dir), wanted],
                              capture_output=True, text=True)
        if done.returncode != 0:
            reason = (done.stderr.strip().splitlines() or ["no message"])[-1]
            raise OnnxExportError(f"exporting {model_dir} to ONNX failed: {reason}")
    return wanted


def export(model_dir: Path, wanted: str) -> None:
    with tempfile.TemporaryDirectory(prefix="policyqa-onnx-") as tmp:
        if not (model_dir / FP32_FILE).is_file():
            _load_onnx(model_dir).save_pretrained(tmp)
            _move_into_place(Path(tmp) / FP32_FILE, model_dir, FP32_FILE)
        if wanted != FP32_FILE:
            from sentence_transformers.backend import export_dynamic_quantized_onnx_model

            export_dynamic_quantized_onnx_model(_load_onnx(model_dir, FP32_FILE), quantisation_target(), tmp)
            _move_into_place(Path(tmp) / wanted, model_dir, wanted)


if __name__ == "__main__":
    export(Path(sys.argv[1]), sys.argv[2])
