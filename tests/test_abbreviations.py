"""The words staff use: abbreviations and policy slang find the clauses that write them out, codes stay whole."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from index.tokenize import tokenize
from ingest.normalize import compact
from tests.conftest import DEMO, LAWS, REPO, SHARED_CORPUS

DICTIONARY = resources.files("index.resources").joinpath("abbreviations.tsv").read_text(encoding="utf-8")
ROWS = [line.split("\t") for line in DICTIONARY.splitlines() if line.strip() and not line.startswith("#")]
# A source citing the corpus: `data/demo/….txt「phrase」` or `laws/…/….txt「phrase」`.
CITATION = re.compile(r"((?:data/demo|laws|seeds)/[^\s「;]+\.txt)「([^」]+)」")


@pytest.fixture(scope="module")
def staff_index(tmp_path_factory, encoder):
    """Laws that write out 双减 and 义务教育 next to 爱国主义教育法, the demo's D级危房 next to generic 危房改造."""
    if not LAWS.is_dir():
        pytest.skip(f"laws corpus not found at {LAWS}")
    from index.clause_index import ClauseIndex
    from ingest.pipeline import ingest_files
    from writes.commit import update_index

    files = [
        DEMO / "001_44f39c8b7c3ae9c1.txt",
        LAWS / "education" / "070_家庭教育促进法.txt",
        LAWS / "education" / "072_爱国主义教育法.txt",
        LAWS / "education" / "074_义务教育法.txt",
        LAWS / "other" / "0985.txt",  # 浙江省社会救助条例: 农村危房改造补贴
    ]
    index_dir = tmp_path_factory.mktemp("staff-words")
    result = ingest_files(files)
    update_index(index_dir, encoder, result.documents, result.clauses)
    return ClauseIndex.open(index_dir, encoder)


def test_shuangjian_finds_the_homework_and_tutoring_burden_clause_first(staff_index):
    top = staff_index.search("双减", k=5)[0]
    assert top.clause.id == "070_家庭教育促进法#第二十六条"
    assert "减轻义务教育阶段学生作业负担和校外培训负担" in top.clause.text
    assert "作业负担" in top.matched_terms  # the full form is what gets highlighted


def test_yijiao_finds_compulsory_education_not_patriotic_education(staff_index):
    hits = staff_index.search("义教", k=5)
    assert hits[0].clause.doc_id == "074_义务教育法"
    assert "义务教育" in hits[0].clause.text
    assert not [h.clause.id for h in hits if h.clause.doc_id == "072_爱国主义教育法"]


def test_grade_d_dangerous_buildings_come_before_generic_dangerous_housing(staff_index):
    top = staff_index.search("D级危房改造", k=5)[0]
    assert top.clause.doc_id == "001_44f39c8b7c3ae9c1"
    assert "d級危房" in top.clause.text
    assert "d级危房" in top.matched_terms


@pytest.mark.parametrize(
    ("text", "code", "pieces"),
    [
        ("D级危房改造", "d级危房", []),
        ("集中氣力消除現有Ｄ級危房", "d级危房", []),  # traditional script, full-width letter: the clause side
        ("新高考选科3+1+2怎么组合", "3+1+2", ["3", "1", "2"]),
        ("启动1+X证书制度试点", "1+x", ["1"]),
        ("211工程院校", "211工程", ["211"]),
        ("实施义务教育均衡发展“215计划”", "215计划", ["215"]),
    ],
)
def test_codes_of_letters_and_digits_stay_single_tokens(text, code, pieces):
    tokens = tokenize(text)
    assert code in tokens
    assert not set(pieces) & set(tokens)


def test_an_abbreviation_inside_a_longer_word_is_not_that_abbreviation():
    assert "义教" not in tokenize("开展爱国主义教育基地建设")
    assert "义教" in tokenize("推进义教均衡")
    assert "改薄" in tokenize("全面改薄工程")  # inside a longer abbreviation it still counts


def test_the_dictionary_parses_and_every_entry_has_a_source():
    assert 40 <= len(ROWS) <= 80
    assert all(len(row) == 3 for row in ROWS), [row[0] for row in ROWS if len(row) != 3]
    abbreviations = [row[0] for row in ROWS]
    assert len(set(abbreviations)) == len(abbreviations)
    for abbreviation, forms, source in ROWS:
        assert abbreviation.strip() == abbreviation and forms.split() and source.strip(), abbreviation
        assert abbreviation not in forms.split(), abbreviation


def test_corpus_citations_in_the_dictionary_are_verbatim():
    if not SHARED_CORPUS.is_dir():
        pytest.skip(f"shared corpus not found at {SHARED_CORPUS}")
    citations = [(row[0], path, phrase) for row in ROWS for path, phrase in CITATION.findall(row[2])]
    assert len(citations) >= 30
    for abbreviation, path, phrase in citations:
        file = (REPO / path) if path.startswith("data/") else (SHARED_CORPUS / path)
        assert compact(phrase) in compact(file.read_text(encoding="utf-8")), f"{abbreviation}: {path}「{phrase}」"
