"""Readers on real policy texts: every encoding and format gives back the same
text, and every unreadable file fails with a message naming the file and why.

Binary fixtures (GBK, docx, pdf ...) are built from the demo seeds at test time.
"""

from __future__ import annotations

import html
import random
import re
from pathlib import Path

import pytest

from ingest.errors import UnreadableFileError
from ingest.readers import SUPPORTED_SUFFIXES, decode_bytes, read_text

DEMO = Path(__file__).parent.parent / "data" / "demo"
SEEDS = sorted(DEMO.glob("*.txt"))
TRADITIONAL = DEMO / "001_44f39c8b7c3ae9c1.txt"
ANSHAN = DEMO / "002_d6057a83cdbdb456.txt"  # 鞍山 notice: paragraphs, 小学班额不超过45人
PHRASE = "小学班额不超过45人"


def original(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def paragraphs(path: Path) -> list[str]:
    """The seed's non-empty paragraphs, GBK-encodable (the seed has NBSP-only spacer lines)."""
    out = []
    for line in original(path).split("\n"):
        line = line.strip()
        if not line:
            continue
        line.encode("gbk")  # fail loudly if the seed changes under us
        out.append(line)
    return out


def assert_names_file(exc: UnreadableFileError, path: Path, *keywords: str) -> None:
    message = str(exc)
    assert exc.path == str(path)
    assert str(path) in message
    for word in keywords:
        assert word.lower() in message.lower(), f"{word!r} not in {message!r}"


def test_seeds_present():
    assert len(SEEDS) == 5
    assert TRADITIONAL in SEEDS and ANSHAN in SEEDS


# ---------------------------------------------------------------- plain text encodings


@pytest.mark.parametrize("seed", SEEDS, ids=lambda p: p.name[:3])
def test_utf8_seed_reads_unchanged(seed):
    assert read_text(seed) == original(seed)


@pytest.mark.parametrize("encoding", ["gb18030", "utf-16", "utf-8-sig"])
@pytest.mark.parametrize("seed", SEEDS, ids=lambda p: p.name[:3])
def test_reencoded_seed_reads_back_equal(seed, encoding, tmp_path):
    text = original(seed)
    path = tmp_path / f"doc.{encoding}.txt"
    path.write_bytes(text.encode(encoding))  # Python's utf-16 writes a BOM
    assert read_text(path) == text


@pytest.mark.parametrize("encoding", ["gb18030", "utf-16", "utf-8-sig", "big5"])
def test_traditional_script_preserved(encoding, tmp_path):
    # No simplification: 關於/教學質量 must come back as written, not 关于/教学质量.
    text = original(TRADITIONAL)
    path = tmp_path / "traditional.txt"
    path.write_bytes(text.encode(encoding))
    result = read_text(path)
    assert result == text
    assert "關於“教育局教學質量計劃”" in result
    assert "关于" not in result


def test_gbk_without_bom_is_not_mojibake(tmp_path):
    # Typical government file: GBK, no BOM, Windows line ends.
    text = original(ANSHAN).replace("\xa0", " ")  # NBSP has no GBK code
    path = tmp_path / "gbk.txt"
    path.write_bytes(text.replace("\n", "\r\n").encode("gbk"))
    result = read_text(path)
    assert PHRASE in result
    assert "\r" not in result
    assert result == text


@pytest.mark.parametrize("encoding", ["utf-16-le", "utf-16-be"])
def test_utf16_without_bom(encoding, tmp_path):
    path = tmp_path / "utf16.md"
    path.write_bytes(original(ANSHAN).encode(encoding))
    assert read_text(path) == original(ANSHAN)


def test_decode_bytes_rejects_binary():
    with pytest.raises(UnreadableFileError):
        decode_bytes(random.Random(1).randbytes(2048))


# ---------------------------------------------------------------- HTML


def build_gbk_page(paras: list[str], meta: str) -> bytes:
    body = []
    for i, p in enumerate(paras):
        body.append(f"  <p>{html.escape(p)}</p>")
        if i == 2:
            body.append("  <script>var tracker = '统计代码'; document.write(tracker);</script>")
    page = f"""<!DOCTYPE html>
<html><head>{meta}<title>鞍山教育网</title>
<style>p {{ font-size: 14px; }} .nav {{ color: red }}</style></head>
<body><div class="content"><div>
{chr(10).join(body)}
</div></div>
<noscript>请启用JavaScript</noscript></body></html>"""
    return page.encode("gbk")


@pytest.mark.parametrize(
    "meta",
    [
        '<meta charset="gbk">',
        '<meta http-equiv="Content-Type" content="text/html; charset=gb2312">',
    ],
    ids=["meta-charset", "http-equiv"],
)
def test_gbk_html_paragraphs_on_own_lines(meta, tmp_path):
    paras = paragraphs(ANSHAN)
    path = tmp_path / "notice.HTM"  # suffix match is case-insensitive
    path.write_bytes(build_gbk_page(paras, meta))
    result = read_text(path)
    # Each paragraph is a block of its own (a blank line apart, so cleaning never rejoins two);
    # HTML collapses runs of ASCII spaces inside a paragraph, as a browser does.
    expected = [re.sub(r" +", " ", p) for p in paras]
    assert result.split("\n\n") == expected
    assert PHRASE in result
    for junk in ("tracker", "document.write", "font-size", "请启用JavaScript", "鞍山教育网</title>"):
        assert junk not in result


# ---------------------------------------------------------------- DOCX


def test_docx_paragraphs_and_table_in_body_order(tmp_path):
    import docx

    paras = paragraphs(ANSHAN)[:12]
    rows = [("学段", "班额上限"), ("小学", "45人"), ("初中", "50人")]
    document = docx.Document()
    for p in paras[:5]:
        document.add_paragraph(p)
    table = document.add_table(rows=len(rows), cols=2)
    for r, row in enumerate(rows):
        for c, value in enumerate(row):
            table.cell(r, c).text = value
    for p in paras[5:]:
        document.add_paragraph(p)
    path = tmp_path / "notice.docx"
    document.save(str(path))

    lines = read_text(path).split("\n")
    # Each row is one line that names its cells by their column headers.
    table = ["学段 · 班额上限", "小学 · 班额上限 45人", "初中 · 班额上限 50人"]
    assert lines == paras[:5] + table + paras[5:]


# ---------------------------------------------------------------- PDF


def _cjk_canvas(path: Path):
    from reportlab.pdfbase import pdfmetrics
    from reportlab.pdfbase.cidfonts import UnicodeCIDFont
    from reportlab.pdfgen import canvas

    pdfmetrics.registerFont(UnicodeCIDFont("STSong-Light"))
    return canvas.Canvas(str(path))


def test_pdf_chinese_text_layer(tmp_path):
    lines = [p for p in paragraphs(ANSHAN) if len(p) <= 40][:6]
    lines.append("到2020年全部消除,并基本做到" + PHRASE + "、初中班额不超过50人。")
    path = tmp_path / "notice.pdf"
    pdf = _cjk_canvas(path)
    for page in (lines[:4], lines[4:]):  # two pages: text must come back in page order
        pdf.setFont("STSong-Light", 11)
        for i, line in enumerate(page):
            pdf.drawString(40, 800 - 20 * i, line)
        pdf.showPage()
    pdf.save()

    result = read_text(path)
    assert re.sub(r"\s", "", result) == re.sub(r"\s", "", "".join(lines))
    assert PHRASE in result


# ---------------------------------------------------------------- unreadable files


def test_random_bytes_txt(tmp_path):
    path = tmp_path / "blob.txt"
    path.write_bytes(random.Random(0).randbytes(4096))
    with pytest.raises(UnreadableFileError) as info:
        read_text(path)
    assert_names_file(info.value, path, "cannot decode")


@pytest.mark.parametrize("kind", ["truncated", "garbage"])
def test_corrupt_docx(kind, tmp_path):
    import docx

    path = tmp_path / f"{kind}.docx"
    if kind == "truncated":
        document = docx.Document()
        document.add_paragraph(paragraphs(ANSHAN)[0])
        document.save(str(path))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(original(ANSHAN).encode("utf-8"))
    with pytest.raises(UnreadableFileError) as info:
        read_text(path)
    assert_names_file(info.value, path, "corrupt", ".docx")


def test_pdf_that_is_not_a_pdf(tmp_path):
    path = tmp_path / "fake.pdf"
    path.write_bytes(b"<html><body>" + PHRASE.encode("utf-8") + b"</body></html>")
    with pytest.raises(UnreadableFileError) as info:
        read_text(path)
    assert_names_file(info.value, path, "not a PDF")


def test_image_only_pdf_needs_ocr(tmp_path):
    from reportlab.pdfgen import canvas

    path = tmp_path / "scan.pdf"
    pdf = canvas.Canvas(str(path))
    pdf.rect(72, 72, 400, 600, fill=1)  # stands in for a scanned page image
    pdf.showPage()
    pdf.save()
    with pytest.raises(UnreadableFileError) as info:
        read_text(path)
    assert_names_file(info.value, path, "no text layer", "OCR")


def test_unsupported_suffix_lists_supported(tmp_path):
    path = tmp_path / "budget.xls"
    path.write_bytes(b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + bytes(512))
    with pytest.raises(UnreadableFileError) as info:
        read_text(path)
    assert_names_file(info.value, path, "unsupported", ".xls", *SUPPORTED_SUFFIXES)


def test_file_over_size_limit(tmp_path):
    path = tmp_path / "big.txt"
    path.write_bytes(ANSHAN.read_bytes())
    size = path.stat().st_size
    with pytest.raises(UnreadableFileError) as info:
        read_text(path, max_bytes=1000)
    assert_names_file(info.value, path, "too large", "limit", "1000 bytes", f"{size / 1024:.1f} KB")
    # Under the limit the same file reads normally.
    assert PHRASE in read_text(path, max_bytes=size)


# ---------------------------------------------------------------- pages under any name, markup in text files

MESSY = Path(__file__).parent.parent.parent / "shared" / "corpus" / "messy"
needs_messy = pytest.mark.skipif(not MESSY.is_dir(), reason=f"messy corpus not found at {MESSY}")


def messy(number: str) -> Path:
    return next(MESSY.glob(f"{number}_*"))


@needs_messy
def test_server_side_page_is_read_as_html_without_its_code():
    text = read_text(messy("09"))  # a .php view: the notice between PHP blocks
    assert "2014年9月1日—2015年8月31日 小班幼儿：100名" in text
    for code in ("<?php", "Admission_Setup", "PushWhere", "strtotime", "getId"):
        assert code not in text


@needs_messy
def test_server_code_without_a_page_is_refused(tmp_path):
    blocks = re.findall(r"<\?php.*?\?>", messy("09").read_text(encoding="utf-8"), flags=re.DOTALL)
    path = tmp_path / "signup.php"
    path.write_text("\n".join(blocks), encoding="utf-8")
    with pytest.raises(UnreadableFileError) as info:
        read_text(path)
    assert_names_file(info.value, path, "server code", "no HTML page")


@needs_messy
def test_declared_charset_is_honoured_only_when_the_bytes_agree(tmp_path):
    # Page 12 declares gb2312 but its bytes are UTF-8.
    assert b"charset=gb2312" in messy("12").read_bytes()
    assert "“国培计划”——示范性项目培训经费预算表" in read_text(messy("12"))
    # And the other way round: GBK bytes under a stale utf-8 declaration, saved as .jsp.
    path = tmp_path / "notice.jsp"
    path.write_bytes(build_gbk_page(paragraphs(ANSHAN), '<meta charset="utf-8">'))
    assert PHRASE in read_text(path)


# What issue #12 found in a scraped text: Flash text-field markup around every paragraph.
FLASH_PARAGRAPH = (
    '<TEXTFORMAT LEADING="2"><P ALIGN="LEFT"><FONT FACE="宋体" SIZE="12" COLOR="#000000" LETTERSPACING="0" '
    'KERNING="0">{}</FONT></P></TEXTFORMAT>'
)


def test_flash_markup_in_a_text_file_is_read_as_markup(tmp_path):
    from ingest.pipeline import parse_file

    paras = paragraphs(ANSHAN)
    path = tmp_path / "scraped.txt"
    path.write_text("".join(FLASH_PARAGRAPH.format(html.escape(p)) for p in paras), encoding="utf-8")
    assert read_text(path).split("\n\n") == [re.sub(r" +", " ", p) for p in paras]
    parsed = parse_file(path)
    for clause in parsed.clauses:
        assert not re.search(r"<|FONT|TEXTFORMAT|&[a-z]+;", clause.text), clause.text[:80]
    plain = parse_file(ANSHAN)
    expected = next(c for c in plain.clauses if PHRASE in c.text)
    found = next(c for c in parsed.clauses if PHRASE in c.text)
    assert (found.text, found.heading_path) == (expected.text, expected.heading_path)


def test_json_escaped_breaks_in_scraped_markup_are_line_breaks(tmp_path):
    from ingest.pipeline import parse_file

    # The whole notice in one <P>, its lines joined by a literal `\r\n` (`\r2.` in the breadcrumb).
    path = tmp_path / "scraped.txt"
    path.write_text(FLASH_PARAGRAPH.format("\\r\\n".join(html.escape(p) for p in paragraphs(ANSHAN))), encoding="utf-8")
    parsed = parse_file(path)
    clause = next(c for c in parsed.clauses if PHRASE in c.text)
    assert clause.heading_path[-1] == "2.深入推进城乡一体化改革发展"
    assert not any("\\r" in c.text or "\\n" in c.text or any("\\r" in h for h in c.heading_path) for c in parsed.clauses)


@needs_messy
def test_word_export_pasted_into_a_text_file_reads_like_the_page(tmp_path):
    path = tmp_path / "budget.txt"
    path.write_bytes(messy("12").read_bytes())
    assert read_text(path) == read_text(messy("12"))


# ---------------------------------------------------------------- tables and legacy Word


@needs_messy
def test_html_table_rows_carry_their_headers():
    lines = read_text(messy("12")).split("\n")
    assert "预算科目 · 经费（元） · 计算说明" in lines
    # 住宿费 spans two rows and 预算科目 two columns: both rows name it.
    assert "住宿费 · 学员住宿费 · 计算说明 元/人/天×人×天" in lines
    assert "住宿费 · 专家住宿费 · 计算说明 元/人/天×人×天" in lines


@needs_messy
def test_legacy_word_doc_is_read_with_its_table():
    lines = read_text(messy("13")).split("\n")
    assert lines[0] == "“国培计划”中小学教师培训经费预算表"
    assert "预算科目 · 经费（元） · 计算说明" in lines
    # A label merged down three rows names each of them.
    assert ["调研与方案研制 · 前期调研费", "调研与方案研制 · 方案研制费", "调研与方案研制 · 项目论证费"] == [
        line for line in lines if line.startswith("调研与方案研制")
    ]


@needs_messy
def test_legacy_doc_without_its_reader_names_what_is_missing(monkeypatch):
    monkeypatch.setattr("ingest.legacy_doc.shutil.which", lambda name: None)
    with pytest.raises(UnreadableFileError) as info:
        read_text(messy("13"))
    assert_names_file(info.value, messy("13"), "antiword", "apt-get install antiword", ".docx")


@needs_messy
def test_page_saved_under_a_doc_name_is_read_as_a_page(tmp_path):
    path = tmp_path / "notice.doc"
    path.write_bytes(messy("10").read_bytes())
    assert "根据网络信息安全相关要求，7月1日起，平台关闭" in read_text(path)
