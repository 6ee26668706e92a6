"""Clause quality on the five demo documents, asserted on their actual content."""

from __future__ import annotations

import re

import pytest

from ingest.clauses import MAX_CLAUSE_CHARS
from ingest.cleaning import strip_boilerplate
from ingest.headings import match_heading
from ingest.normalize import compact
from ingest.pipeline import is_metadata_line
from ingest.readers import read_text
from tests.conftest import SEEDS


def clause_with(parsed, phrase):
    found = [c for c in parsed.clauses if phrase in c.text]
    assert found, f"no clause contains {phrase!r}"
    return found[0]


def test_class_size_sentence_is_one_clause_under_its_headings(seeds):
    clause = clause_with(seeds["002"], "小学班额不超过45人、初中班额不超过50人")
    assert "(三)要把深化教育改革作为提升教育质量的突破口" in clause.heading_path
    assert "2.深入推进城乡一体化改革发展" in clause.heading_path
    assert clause.heading_path[0] == "二、具体措施"
    assert clause.id.startswith("002_d6057a83cdbdb456#二.(三).2")


def test_seed_002_metadata(seeds):
    (doc,) = seeds["002"].documents
    assert doc.title == "关于印发《大力提升义务教育工作质量实施意见》的通知"
    assert doc.doc_number == "鞍教发〔2017〕66号"
    assert doc.issuer == "鞍山市教育局"
    assert doc.date == "2017-04-20"
    assert doc.region == "鞍山市"


def test_page_numbers_removed_and_sentence_rejoined(seeds):
    clause = clause_with(seeds["004"], "保证少年儿童平等的受教育权利")
    assert "平等的\n" not in clause.text
    text = "".join(c.text for c in seeds["004"].clauses)
    for page_start in ("2、受教育权利", "3、还不能满足", "4、采取各种有效措施", "5、试行)", "6、公开招聘", "7、的情况记入"):
        assert page_start not in text
    for rejoined in ("但是,由于这样那样的差距仍然存在,还不能满足", "实施素质教育,采取各种有效措施", "在农村学校任教的情况记入教师档案"):
        assert rejoined in text
    # The real list items of seed 004 (`4、主要目标…`, `5、实施学校布局规划工程`) stay.
    assert any(c.text.startswith("5、实施学校布局规划工程") for c in seeds["004"].clauses)


BOILERPLATE = [
    "您现在的位置", "浏览数量", "收藏文章", "打印文章", "最近訪問", "温馨提示", "当前文档最多预览",
    "资源描述", "格式:doc", "大小:", "页数:", "文档页数", "下载文档查看全文", "由互联网用户分享整理",
    "此文档下载收益归作者所有", "仅供参考", "_第1页",
]


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_no_clause_is_boilerplate(seeds, name):
    for clause in seeds[name].clauses:
        for marker in BOILERPLATE:
            assert marker not in clause.text, f"{clause.id} contains {marker!r}"


def test_ocr_garbage_removed_and_real_text_around_it_kept(seeds):
    text = "\n".join(c.text for c in seeds["003"].clauses)
    for debris in ("鞫", "§", "{", "|", "矗幺", "≥茹"):
        assert debris not in text
    assert "教育是经济社会协调发展与构建和谐社会的基础" in text
    assert "有利于促进格尔木市教育的快速协调健康发展" in text


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_nothing_real_is_dropped(seeds, name):
    """Every sentence of the source (outside boilerplate and OCR debris) is in some clause or title."""
    parsed = seeds[name]
    # In reading order: each document's title, then each clause's headings and text.
    pieces = []
    for doc in parsed.documents:
        pieces.append(doc.title)
        shown: set[str] = set()
        for clause in (c for c in parsed.clauses if c.doc_id == doc.doc_id):
            new = [h for h in clause.heading_path if h not in shown and not clause.text.startswith(h.rstrip("…"))]
            shown.update(clause.heading_path)
            pieces.extend(new + [clause.text])
    haystack = compact("".join(pieces))
    for line in strip_boilerplate(read_text(SEEDS[name]).split("\n")):
        line = re.sub(r"^\s*(\d+、|【[^】]*】)", "", line.strip())  # page numbers and 文号 brackets are not text
        line = re.sub(r"(文章属性.*?)?正文[:：]?[-\s]*", "", line)  # a property block is metadata, kept on the document
        line = re.sub(r"^(.{8,}?)\1", r"\1", line)  # a title printed twice is shown once
        if not line or is_metadata_line(line) or re.search(r"[{}|§≥]", line):
            continue
        for sentence in re.split(r"[。！？]", line):
            if len(sentence) >= 8 and "仅供参考" not in sentence and "会员上传" not in sentence:
                assert compact(sentence) in haystack, f"lost: {sentence[:40]}"


def test_pasted_documents_are_split_with_their_own_titles(seeds):
    docs = seeds["003"].documents
    titles = [d.title for d in docs]
    assert "义务教育均衡发展会议上的讲话" in titles
    assert any("整改报告" in t for t in titles)
    assert "义务教育均衡发展政策解读" in titles
    assert "丹东市人民政府办公室转发市教育局关于全面推进我市义务教育均衡发展意见的通知" in titles
    assert "内蒙古自治区人民政府关于深入推进义务教育均衡发展的实施意见" in titles
    assert any("经验材料之八" in t for t in titles)
    assert len(docs) >= 7
    by_title = {d.title: d for d in docs}
    dandong = by_title["丹东市人民政府办公室转发市教育局关于全面推进我市义务教育均衡发展意见的通知"]
    assert dandong.doc_number == "丹政办发〔2007〕12号" and dandong.date == "2007-04-16"
    assert by_title["内蒙古自治区人民政府关于深入推进义务教育均衡发展的实施意见"].doc_number == "内政发〔2014〕48号"
    # The 云和县 report and the 梧州市 report land in different documents.
    yunhe = clause_with(seeds["003"], "云和县委、县政府始终把义务教育的均衡发展")
    wuzhou = clause_with(seeds["003"], "梧州市紧紧围绕义务教育发展")
    assert yunhe.doc_id != wuzhou.doc_id
    assert len({c.doc_id for c in seeds["003"].clauses}) == len(docs)


def test_traditional_text_kept_and_normalised_for_matching(seeds):
    clause = clause_with(seeds["001"], "學校治理創新年")
    assert "学校治理创新年" in clause.norm_text
    assert "學校治理創新年" not in clause.norm_text
    assert clause.heading_path[0] == "一、全面實施素質教育,進步教育教學質量"
    assert clause.heading_path[-1] == "4、開展“學校治理創新年”活動"


def test_skipped_and_restarted_numbering(seeds):
    # Seed 001 jumps from item 8 to item 10 inside one paragraph, then restarts at 1 under 四、.
    ids = [c.id for c in seeds["001"].clauses]
    assert "001_44f39c8b7c3ae9c1#三.8" in ids
    assert "001_44f39c8b7c3ae9c1#三.10" in ids
    assert "001_44f39c8b7c3ae9c1#四.1" in ids
    # `堅持“安全第` + page break + `一、預防為主`: a sentence, not a heading 一、.
    clause_with(seeds["001"], "堅持“安全第一、預防為主、綜合治理”的方針")
    assert len(seeds["001"].documents) == 1
    # Seed 000's first items are unnumbered: they stay with their (一) heading, item 2 is its own clause.
    first = clause_with(seeds["000"], "依法保障教育投入")
    assert first.heading_path == ["三、重点任务", "(一)瞄准高位均衡,创造更好的办学条件"]
    second = clause_with(seeds["000"], "加快实施薄弱学校改造工程")
    assert second.id.endswith("#三.(一).2") and second.id != first.id


def test_run_in_heading_title(seeds):
    clause = clause_with(seeds["002"], "着力实施“五个融入”")
    assert clause.heading_path[-1] == "1.把社会主义核心价值观教育落小落细落实"
    assert clause.text.startswith("1.把社会主义核心价值观教育落小落细落实。")


@pytest.mark.parametrize("name", sorted(SEEDS))
def test_clauses_are_capped_addressable_and_point_into_their_document(seeds, name):
    parsed = seeds[name]
    docs = {d.doc_id: d for d in parsed.documents}
    ids = [c.id for c in parsed.clauses]
    assert len(ids) == len(set(ids))
    for clause in parsed.clauses:
        assert 0 < len(clause.text) <= MAX_CLAUSE_CHARS
        assert clause.id.startswith(clause.doc_id + "#")
        assert docs[clause.doc_id].text[clause.char_start : clause.char_end] == clause.text


def test_long_clause_splits_at_sentences_and_keeps_heading_path(seeds):
    parts = [c for c in seeds["002"].clauses if c.id.startswith("002_d6057a83cdbdb456#二.(三).2")]
    assert len(parts) == 2
    assert parts[0].heading_path == parts[1].heading_path
    assert parts[0].text.endswith("。") and parts[1].id.endswith("~2")


@pytest.mark.parametrize(
    "line",
    ["依照第十条的规定处罚。", "第十条规定的情形，由教育行政部门处理。", "第三条、第四条所列事项", "一是坚持立德树人"],
)
def test_cross_references_are_not_headings(line):
    assert match_heading(line) is None


@pytest.mark.parametrize(
    ("line", "family", "address"),
    [
        ("第一章 总则", "chapter", "第一章"),
        ("第十二条 适龄儿童、少年免试入学。", "article", "第十二条"),
        ("一、总体要求", "cn_num", "一"),
        ("（一）指导思想。以习近平新时代中国特色社会主义思想为指导", "paren_cn", "(一)"),
        ("(三)强化督导评估", "paren_cn", "(三)"),
        ("2. 加快实施薄弱学校改造工程。严格按调整后的", "arabic", "2"),
        ("10、改善學校辦學條件。", "arabic", "10"),
        ("（1）城乡教育资源配置不均衡。", "paren_arabic", "(1)"),
        ("①开设美育课程", "circled", "①"),
    ],
)
def test_heading_families(line, family, address):
    heading = match_heading(line)
    assert heading is not None and heading.family == family and heading.address == address


def test_run_in_heading_title_stops_at_first_sentence():
    heading = match_heading("（一）指导思想。以习近平新时代中国特色社会主义思想为指导")
    assert heading.title == "（一）指导思想" and heading.run_in
