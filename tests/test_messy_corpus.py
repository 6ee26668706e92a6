"""Messy scraped pages and files stay out of results (issue #12 part 2), on every file of
../shared/corpus/messy, against metadata written by hand in tests/fixtures/messy_expected.json."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from ingest.errors import EmptyDocumentError, IngestError
from ingest.metadata import extract_metadata, find_doc_number, find_region
from ingest.normalize import compact
from ingest.pipeline import parse_file, parse_text
from tests.conftest import LAWS, SEEDS, SHARED_CORPUS

MESSY = SHARED_CORPUS / "messy"
EXPECTED = {
    name: value
    for name, value in json.loads((Path(__file__).parent / "fixtures" / "messy_expected.json").read_text()).items()
    if not name.startswith("_")
}
FIELDS = ("title", "issuer", "date", "doc_number", "region")

pytestmark = pytest.mark.skipif(not MESSY.is_dir(), reason=f"messy corpus not found at {MESSY}")


@pytest.fixture(scope="module")
def parsed() -> dict:
    results: dict = {}
    for name in EXPECTED:
        try:
            results[name] = parse_file(MESSY / name)
        except IngestError as exc:
            results[name] = exc
    return results


def documents_of(parsed, name):
    result = parsed[name]
    assert not isinstance(result, Exception), f"{name} was refused: {result}"
    return result


def test_fixture_covers_every_file():
    assert sorted(EXPECTED) == sorted(p.name for p in MESSY.iterdir() if p.name != "SOURCES.md")


@pytest.mark.parametrize("name", sorted(EXPECTED), ids=lambda n: n[:2])
def test_metadata_is_what_the_page_shows(parsed, name):
    expected = EXPECTED[name]
    if "refused" in expected:
        # A page with no body (08), a listing of titles and pagers (17, 19), a page whose
        # content is all commented out (20): reported, never clauses.
        assert isinstance(parsed[name], EmptyDocumentError), f"{name} was not refused"
        assert expected["refused"] in parsed[name].reason
        assert name in str(parsed[name])
        return
    (doc,) = documents_of(parsed, name).documents
    assert {f: getattr(doc, f) for f in FIELDS} == {f: expected[f] for f in FIELDS}


@pytest.mark.parametrize("name", sorted(n for n in EXPECTED if "refused" not in EXPECTED[n]), ids=lambda n: n[:2])
def test_page_text_kept_and_site_chrome_dropped(parsed, name):
    text = "\n".join(c.text for c in documents_of(parsed, name).clauses)
    for phrase in EXPECTED[name]["in_clauses"]:
        assert phrase in text, f"lost: {phrase}"
    for junk in EXPECTED[name]["not_in_clauses"]:
        assert junk not in text, f"kept: {junk}"


# Markup, server code, entities, JSON escapes: none may reach a clause.
_MARKUP = re.compile(r"<[A-Za-z/!?%]|%>|\?>|-->|&(?:[a-z]{2,8}|#\d+);|\\[rnu]")
_CJK = re.compile(r"[\u3400-\u9fff]")


def _bare_line(line: str) -> bool:
    """A line with no word in it: numbers, punctuation, symbols."""
    return not _CJK.search(line) and not re.search(r"[A-Za-z]{2}", line)


def test_no_clause_is_mostly_markup_or_numbers(parsed):
    clauses = [c for result in parsed.values() if not isinstance(result, Exception) for c in result.clauses]
    assert len(clauses) > 50
    for clause in clauses:
        assert not _MARKUP.search(clause.text), f"{clause.id}: {clause.text[:80]}"
        lines = [line for line in clause.text.split("\n") if line.strip()]
        assert sum(map(_bare_line, lines)) * 2 < len(lines), f"{clause.id} is mostly numbers: {clause.text[:80]}"


# A list item, which may have no sentence end (07's research topics: `4. 人脸识别考勤系统研究`).
_LIST_ITEM = re.compile(r"^(?:\d{1,2}[.、．]|[（(][一二三四五六七八九十\d]{1,3}[）)]|[一二三四五六七八九十]{1,3}、)\s*\S")


def _visible_sentences(path: Path) -> list[str]:
    """The sentences and list items a reader of the page sees: body text outside scripts, styles and
    navigation links."""
    from selectolax.lexbor import LexborHTMLParser

    html = re.sub(r"<%.*?%>|<\?php.*?(?:\?>|\Z)", "", path.read_text(encoding="utf-8"), flags=re.DOTALL)
    tree = LexborHTMLParser(html)
    tree.strip_tags(["script", "style", "noscript", "head", "template", "select"], recursive=True)
    for link in tree.css("a"):
        if not re.search(r"[。；]", link.text()):
            link.decompose()
    text = tree.body.text(separator="\n") if tree.body else ""
    sentences = []
    for line in text.split("\n"):
        line = line.strip()
        if _LIST_ITEM.match(line) and len(_CJK.findall(line)) >= 4:
            sentences.append(line)
        for sentence in re.findall(r"[^。！？；]+[。！？；]", line):
            if len(sentence) >= 8 and len(_CJK.findall(sentence)) >= 0.6 * len(sentence):
                sentences.append(sentence)
    return sentences


@pytest.mark.parametrize(
    "name", sorted(n for n in EXPECTED if "refused" not in EXPECTED[n] and not n.endswith(".doc")), ids=lambda n: n[:2]
)
def test_every_visible_sentence_survives(parsed, name):
    """Nothing real is dropped: each sentence and list item the page shows is in a title, heading or clause."""
    result = documents_of(parsed, name)
    pieces = [d.title for d in result.documents]
    for clause in result.clauses:
        pieces.extend(clause.heading_path + [clause.text])
    haystack = compact("".join(pieces))
    lost = [s for s in _visible_sentences(MESSY / name) if compact(s) not in haystack]
    assert not lost, lost[:3]


# ---------------------------------------------------------------- what the issue reported


def test_site_name_and_date_widget_leave_the_title():
    from ingest.documents import clean_title

    # Titles reported in issue #12, as scraped pages printed them.
    assert clean_title("关于公布2019年度绍兴市教育系统先进集体的通知--党政办-绍兴市第一中学今天是") == (
        "关于公布2019年度绍兴市教育系统先进集体的通知"
    )
    assert clean_title("当前位置：首页 > 通知公告 > 关于做好2020年招生工作的通知") == "关于做好2020年招生工作的通知"
    # A subtitle after a dash is part of the title.
    assert clean_title("“国培计划”——示范性项目培训经费预算表") == "“国培计划”——示范性项目培训经费预算表"


@pytest.mark.parametrize(
    ("title", "region"),
    [("关于公布绍兴市2019年度教育系统先进集体的通知", "绍兴市"), ("转发绍兴市教育局关于做好招生工作的通知", "绍兴市"),
     ("面向本辖区招生的通知", None), ("关于公布某市名单的通知", None)],
)
def test_region_is_a_real_place(title, region):
    assert find_region(None, title) == region


def test_forwarded_notice_names_its_issuer_and_forwarder():
    meta = extract_metadata("转发绍兴市教育局关于做好招生工作的通知", "来源：绍兴市第一中学", "各处室：现将文件转发给你们。")
    assert meta.issuer == "绍兴市教育局" and meta.forwarded_by == "绍兴市第一中学"


def test_forwarded_documents_in_the_corpora():
    dandong = next(d for d in parse_file(SEEDS["003"]).documents if d.title.startswith("丹东市人民政府办公室转发"))
    assert (dandong.issuer, dandong.forwarded_by) == ("丹东市教育局", "丹东市人民政府办公室")
    (hefei,) = parse_file(next(LAWS.rglob("127_*.txt"))).documents
    assert (hefei.issuer, hefei.forwarded_by, hefei.region) == ("安徽省人民政府办公厅", "合肥市教育局", "安徽省")


@pytest.mark.parametrize("brackets", ["〔〕", "[]", "()", "【】", "（）", "［］", "﹝﹞"])
def test_doc_number_in_every_bracket_form(brackets):
    header = f"关于做好招生工作的通知\n穗教发{brackets[0]}2024{brackets[1]}8号\n各区教育局："
    assert find_doc_number(header) == "穗教发〔2024〕8号"


def test_cited_number_is_not_the_documents_own():
    # Page 01 cites 穗教发〔2024〕8号 in its first sentence; its own 文号 field is empty.
    header = "各区教育局：\n根据《广州市教育局关于印发〈方案〉的通知》（穗教发〔2024〕8号）规定"
    assert find_doc_number(header) is None


def test_flattened_quota_table_becomes_rows_with_headers():
    # A 名额分配 table a text file printed one cell per line (laws/education 126, 合肥).
    parsed = parse_file(next(LAWS.rglob("126_*.txt")))
    lines = [line for c in parsed.clauses for line in c.text.split("\n")]
    assert "序号 5 · 县区名称 巢湖 · 名额数 25 · 备注 全国中小学生艺术素质测评实验区" in lines
    assert "序号 1 · 县区名称 肥东 · 名额数 15" in lines
    assert not [line for line in lines if re.fullmatch(r"\d+", line)]


def test_a_one_line_dump_is_titled_by_its_opening_words():
    # A law pasted as one 1 MB line with no title line (issue #11's upload shape): the title is its
    # opening words, cut short, looked for at the start only.
    law = sorted((LAWS / "education").glob("*.txt"))[3].read_text(encoding="utf-8")
    body = "".join(law.split("\n")[1:])
    (doc,) = parse_text(body * (1_000_000 // len(body.encode()) + 1), "dump.txt", "dump").documents
    assert doc.title == "1993年2月6日 上海市第九届人民代表大会常务委员会第四十…"
