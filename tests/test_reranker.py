"""Our reranker as users get it: shipped small with its manifest, assembled and exported at set-up, run
without torch, replaceable by a folder of one's own, and refused clearly when misconfigured."""

from __future__ import annotations

import hashlib
import json
import os

import numpy as np
import pytest

from index.clause_text import passage_text
from ingest.pipeline import find_files, ingest_files
from policyqa.settings import Settings
from rerank.assemble import SHIPPED_DIR, RerankerBuildError, build_default_reranker
from rerank.reranker import RerankerError, load_reranker, reranker_dir
from tests.conftest import DEMO, REPO

MODELS = REPO / "data" / "models"
QUESTION = "小学一个班最多能有多少学生?"


def test_the_shipped_weights_are_small_and_their_manifest_names_the_data_and_the_seed():
    weights = SHIPPED_DIR / "weights.safetensors"
    assert weights.stat().st_size <= 25 * 1024 * 1024
    manifest = json.loads((SHIPPED_DIR / "manifest.json").read_text(encoding="utf-8"))
    batches = sorted((REPO / "data" / "train" / "batches").glob("*.jsonl"))
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in batches)).hexdigest()
    assert manifest["questions_sha256"] == digest, "the questions changed since the shipped model was trained"
    assert manifest["seed"] == 22 and manifest["settings"]["layers"] >= 1
    # The answering clause (sentence) first among it and its mined wrong ones (~1 in 6 by chance).
    assert manifest["dev_metrics"]["clause_p@1"] > 0.45 and manifest["dev_metrics"]["sentence_p@1"] > 0.5


def test_missing_weights_and_a_folder_that_is_no_reranker_are_refused_with_the_reason(tmp_path):
    with pytest.raises(RerankerBuildError, match="weights are missing"):
        build_default_reranker(tmp_path / "out", tmp_path / "base", shipped=tmp_path / "nothing")
    (tmp_path / "encoder").mkdir()
    (tmp_path / "encoder" / "config.json").write_text('{"architectures": ["BertModel"]}', encoding="utf-8")
    with pytest.raises(RerankerError, match="ForSequenceClassification"):
        reranker_dir(Settings(models_dir=MODELS, reranker=str(tmp_path / "encoder")))
    with pytest.raises(RerankerError, match="not a folder"):
        reranker_dir(Settings(models_dir=MODELS, reranker=str(tmp_path / "no-such-folder")))
    assert reranker_dir(Settings(models_dir=MODELS, reranker="none")) is None


@pytest.fixture(scope="module")
def demo_pairs():
    """23 demo clauses about other things, then the class-size clause that answers QUESTION."""
    clauses = ingest_files(list(find_files([DEMO]))).clauses
    answering = next(c for c in clauses if "小学班额不超过45人" in c.text)
    return [passage_text(c) for c in clauses[:23] if c is not answering][:23] + [passage_text(answering)]


@pytest.mark.model
def test_the_onnx_reranker_scores_as_the_trained_torch_model_does(demo_pairs):
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    folder = reranker_dir(Settings(models_dir=MODELS))
    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = BertForSequenceClassification.from_pretrained(folder).eval()
    manifest = json.loads((folder / "manifest.json").read_text(encoding="utf-8"))
    batch = tokenizer([QUESTION] * len(demo_pairs), demo_pairs, truncation="only_second",
                      max_length=manifest["settings"]["max_tokens"], padding=True, return_tensors="pt")
    with torch.inference_mode():
        expected = torch.sigmoid(model(**batch).logits[:, 0]).numpy()
    fp32 = load_reranker(Settings(models_dir=MODELS, reranker_variant="onnx")).score(QUESTION, demo_pairs)
    np.testing.assert_allclose(fp32, expected, atol=1e-3)
    int8 = load_reranker(Settings(models_dir=MODELS)).score(QUESTION, demo_pairs)
    assert np.argmax(int8) == np.argmax(expected)
    assert np.corrcoef(int8, expected)[0, 1] > 0.95
    # Alone, our small reranker is no oracle (README, "Reranker"): the answer is among its best 3 of 24.
    assert (int8 > int8[-1]).sum() < 3


@pytest.mark.model
def test_a_clause_scores_the_same_whatever_it_is_read_with(demo_pairs):
    """The chat refuses below a fixed score: a clause's score must not move with the clauses retrieved
    beside it (read in batches, int8's per-call scaling moved scores by up to 0.14)."""
    reranker = load_reranker(Settings(models_dir=MODELS), concurrent=True)
    together = reranker.score(QUESTION, demo_pairs)
    alone = np.array([reranker.score(QUESTION, [passage])[0] for passage in demo_pairs])
    reversed_order = reranker.score(QUESTION, demo_pairs[::-1])[::-1]
    np.testing.assert_allclose(together, alone, atol=1e-6)
    np.testing.assert_allclose(reversed_order, alone, atol=1e-6)


@pytest.mark.model
def test_a_reranker_folder_of_ones_own_is_used_instead(tmp_path, demo_pairs):
    """As a user would configure bge-reranker-v2-m3: a folder with a sequence classifier, exported at first use."""
    ours = reranker_dir(Settings(models_dir=MODELS))
    own = tmp_path / "my-reranker"
    own.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        os.symlink(ours / name, own / name)
    settings = Settings(models_dir=MODELS, reranker=str(own), reranker_variant="onnx")
    theirs = load_reranker(settings)
    assert theirs.name == "my-reranker" and theirs.max_tokens == 512  # no manifest: the model's own limit
    expected = load_reranker(Settings(models_dir=MODELS, reranker_variant="onnx")).score(QUESTION, demo_pairs)
    # Longer truncation reads more of long clauses; the clauses short enough score the same.
    short = [i for i, p in enumerate(demo_pairs) if len(p) < 100]
    np.testing.assert_allclose(theirs.score(QUESTION, demo_pairs)[short], expected[short], atol=1e-3)
