"""Cleaning scraped policy text into paragraphs: boilerplate, OCR garbage, page markers, broken lines,
flattened tables, and noise (markup, code, bare numbers) that no clause may consist of.

Pure functions over strings. Each rule removes only what it can recognise with
confidence; anything doubtful stays (nothing real may be dropped).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ingest.headings import INLINE_MARKER, match_heading
from ingest.metadata import is_date_line, is_metadata_line
from ingest.normalize import to_simplified
from ingest.tables import unflatten

# Whole lines that are site chrome, download-site notices or file-info, never policy text.
_BOILERPLATE_LINE = re.compile(
    "|".join(
        [
            r"^您(现在|現在)的位置",
            r"^当前位置[:：]",
            r"^(浏览数量|浏览次数|瀏覽數量)[:：]?.{0,20}$",
            r"^(收藏文章|打印文章|关闭窗口|打印本页|【打印】|【关闭】)(\s|$)",
            r"^(收藏文章|打印文章|浏览数量[:：]?)(\s*(收藏文章|打印文章|关闭窗口))*\s*$",
            r"^(最近訪問|最近访问)\s*$",
            r"^当前文档最多预览.{0,6}页",
            r"^此文档下载收益归作者所有",
            r"^温馨提示[:：]?\s*$",
            r"^资源描述[:：]\s*$",
            r"^《.{1,80}》由(会员|互联网用户|网友)(上传|分享).{0,40}",
            r"^.{1,60}_第\d+页\s*$",
            r"^-?\s*(格式|大小|文档页数|页数|ID|时间)[:：]\s*[\w.\- :]{0,30}$",
            r"^下面是.{0,20}(给大家|为大家|为你|为您)整理的.{0,60}仅供参考",
            # Scraped-page widgets: share, print, font size, counters, pagers.
            r"^(分享到|扫一扫在手机打开当前页|扫一扫|返回顶部|回到顶部|打印本页|打印页面|关闭本页|关闭窗口|发布|【纠错】|纠错)[:：]?\s*$",
            r"^T?浏览字号.{0,8}$",
            r"^字号[:：]?\s*[大中小\s]*$",
            r"^(网站访问量|访问量|浏览量)[:：].{0,12}$",
            r"^(首页\s*)?(上一页|下一页|尾页|末页)(\s*(\d+|上一页|下一页|尾页|末页|首页))*\s*$",
            r"^(相关信息|相关新闻|相关链接|相关文章|相关阅读|更多)\s*$",
        ]
    )
)
# The numbered lines a download site prints under 温馨提示.
_NOTICE_ITEM = re.compile(r"^\d+[.．、]\s*(部分包含|本文档由|下载前|下载文档时|如果您|若出现)")

# OCR garbage: symbols that never occur in policy prose (`{}|§%`), stray latin letters between
# CJK characters, and rare characters. Rare characters alone prove nothing (chemical elements,
# fish, medical terms, names are rare and real), so a segment needs two hard signs as well.
_HARD_SYMBOL = re.compile(r"[{}|§%¤¦~^¨‖]")
_TABLE_ROW = re.compile(r"^\s*\|.*\|\s*$")
_SEGMENT_SPLIT = re.compile(r"(?<=[。！？!?；;，,])")
_GARBAGE_MIN_SEGMENT = 6

TERMINAL_PUNCT = "。！？!?；;：:”」』）)》…"


@dataclass
class Paragraph:
    text: str
    after_garbage: bool = False  # OCR garbage preceded it: a scanned page, often another document


# A listing's teaser: the start of an article cut off, with a link to the rest.
_TEASER = re.compile(r"(?:\.{3}|…{1,2})\s*(?:\[详细\]|\[详情\]|\[更多\]|\[全文\]|详细>>|更多>>|阅读全文|查看全文)$")
_TEASER_ENDS = ("]", ">", "文")


def is_boilerplate(line: str) -> bool:
    line = line.strip()
    # The teaser test is unanchored: only lines ending like one pay for it.
    return bool(_BOILERPLATE_LINE.search(line)) or (line.endswith(_TEASER_ENDS) and bool(_TEASER.search(line)))


def _gb2312_level_1() -> str:
    """GB2312 level 1 holds the 3,755 most common characters; policy prose rarely leaves it."""
    codes = (bytes((hi, lo)) for hi in range(0xB0, 0xD8) for lo in range(0xA1, 0xFF))
    return "".join(code.decode("gb2312", errors="ignore") for code in codes)


# Signs are counted with regexes, not a loop over characters: a 10 MB one-line upload spent 90 s there.

# A latin letter standing alone (spaces aside) between CJK characters or symbols: `基嘻}嚣c馥`, not a word.
_STRAY_LETTER = re.compile(r"(?<![A-Za-z0-9])[A-Za-z](?![A-Za-z0-9])")
_CJK_CHAR = re.compile(r"[\u4e00-\u9fff]")
_COMMON_CJK = re.compile("[" + _gb2312_level_1() + "]")


def _hard_signs(chars: str) -> int:
    return len(_HARD_SYMBOL.findall(chars)) + len(_STRAY_LETTER.findall(chars))


def _rare_characters(chars: str) -> int:
    if not _CJK_CHAR.search(chars):
        return 0
    # Traditional characters are rare in GB2312 but not garbage: look at the simplified form.
    simplified = to_simplified(chars)
    return len(_CJK_CHAR.findall(simplified)) - len(_COMMON_CJK.findall(simplified))


def garbage_score(segment: str) -> float:
    """Share of a segment that looks like OCR debris (hard signs count fully, rare characters half)."""
    chars = "".join(segment.split())
    return (_hard_signs(chars) + _rare_characters(chars) / 2) / len(chars) if chars else 0.0


def _is_garbage(segment: str) -> bool:
    if len(segment.strip()) < _GARBAGE_MIN_SEGMENT:
        return False
    chars = "".join(segment.split())
    hard = _hard_signs(chars)
    # Rare characters (the costly part: simplification first) only matter once there are two hard signs.
    return hard >= 2 and hard + _rare_characters(chars) / 2 >= 0.3 * len(chars)


def remove_garbage(line: str) -> tuple[str, int]:
    """Drop OCR-garbage segments of a line; returns the rest and how many characters were dropped."""
    if _TABLE_ROW.match(line):
        return line, 0
    segments = _SEGMENT_SPLIT.split(line)
    kept = "".join(s for s in segments if not _is_garbage(s))
    return (kept.strip(), len(line) - len(kept)) if len(kept) != len(line) else (line, 0)


def _short_garbage_line(line: str) -> bool:
    """Short debris lines next to a garbage run (`矗幺。`)."""
    return len(line) <= 12 and garbage_score(line) >= 0.15


# This much garbage is a scanned page pasted in: what follows is often another document.
SCAN_BOUNDARY_CHARS = 30


def drop_garbage(paragraphs: list[Paragraph]) -> list[Paragraph]:
    dropped = [remove_garbage(p.text) for p in paragraphs]
    out: list[Paragraph] = []
    boundary = False
    for i, (text, lost) in enumerate(dropped):
        near_garbage = any(dropped[j][1] for j in (i - 1, i + 1) if 0 <= j < len(dropped))
        boundary = boundary or lost >= SCAN_BOUNDARY_CHARS
        if not lost and near_garbage and _short_garbage_line(text):
            continue
        if text:
            out.append(Paragraph(text, after_garbage=boundary or paragraphs[i].after_garbage))
            boundary = False
    return out


def strip_boilerplate(lines: list[str]) -> list[str]:
    out: list[str] = []
    in_notice = False
    for line in lines:
        stripped = line.strip()
        if re.match(r"^温馨提示[:：]?\s*$", stripped):
            in_notice = True
            continue
        if in_notice and _NOTICE_ITEM.match(stripped):
            continue
        in_notice = False
        if not is_boilerplate(stripped):
            out.append(line)
    return out


def _ends_mid_sentence(text: str) -> bool:
    text = text.rstrip()
    return bool(text) and text[-1] not in TERMINAL_PUNCT


_PAGE_MARKER = re.compile(r"^(\d{1,3})、")


def _page_marker_lines(lines: list[str]) -> set[int]:
    """Indexes of lines whose leading `N、` is a page number, not a list item.

    Download sites print page numbers as `1、` .. `8、` at the start of each page. They run
    1, 2, 3 ... with no gap and most of them cut a sentence in half; list items do neither.
    """
    hits = [(i, int(m.group(1))) for i, line in enumerate(lines) if (m := _PAGE_MARKER.match(line.strip()))]
    if len(hits) < 3 or [n for _, n in hits] != list(range(1, len(hits) + 1)):
        return set()
    cuts = 0
    for i, _ in hits[1:]:
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        cuts += _ends_mid_sentence(previous)
    return {i for i, _ in hits} if cuts * 2 >= len(hits) - 1 else set()


def _continues_previous(previous: str, line: str) -> bool:
    """A line that carries on a sentence cut by a page break or a hard wrap."""
    if not previous or not _ends_mid_sentence(previous):
        return False
    # `安全第` + `一、预防为主`: the numeral belongs to the sentence, it is no heading.
    if previous.rstrip().endswith("第") and re.match(r"^[一二三四五六七八九十]+、", line):
        return True
    heading = match_heading(previous)
    if (heading and not heading.run_in) or match_heading(line):
        return False
    # A wrapped sentence is long and already has its commas; a title line has neither.
    return len(previous.strip()) >= 30 and any(ch in previous for ch in "，,、")


def join_paragraphs(lines: list[str]) -> list[str]:
    """Rejoin sentences cut by page markers or wraps; one paragraph per line out."""
    markers = _page_marker_lines(lines)
    out: list[str] = []
    blank_since = False
    for i, raw in enumerate(lines):
        line = raw.strip(" \u3000\t\r\xa0")
        if not line:
            blank_since = True
            continue
        if i in markers:
            first_page = _PAGE_MARKER.match(line).group(1) == "1"
            line = _PAGE_MARKER.sub("", line, count=1)
            if out and not first_page and _ends_mid_sentence(out[-1]):
                out[-1] += line
                continue
        elif out and _continues_previous(out[-1], line) and (not blank_since or out[-1].rstrip().endswith("第")):
            out[-1] += line
            blank_since = False
            continue
        out.append(line)
        blank_since = False
    return out


_RUN_ON_ITEM = re.compile(rf"(?<=[。；;！？!?：:])\s*(?={INLINE_MARKER.pattern})")


def split_run_on_items(paragraph: str) -> list[str]:
    """Split `…。4、主要目标是…。5、实施…` into one paragraph per numbered item."""
    parts = [p.strip() for p in _RUN_ON_ITEM.split(paragraph)]
    return [p for p in parts if p]


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_ASCII_WORD = re.compile(r"[A-Za-z]+")
_MARKUP_REMNANT = re.compile(r"</?[A-Za-z][\w:.-]*(?:\s[^<>]*)?/?>|&[A-Za-z]{2,8};|&#\d+;")
_CODE_SIGN = re.compile(r"->|=>|::|&&|\|\||[{}()\[\];=<>$&|\\*#@`'\"]")
_SQL = re.compile(
    r"^\s*(?:select\s.+\sfrom\s|insert\s+into\s|update\s+\S+\s+set\s|delete\s+from\s|"
    r"create\s+(?:table|index|view)\s|drop\s+table\s|alter\s+table\s)",
    re.IGNORECASE,
)
# Code is mostly identifiers and operators; prose in any language has few operators.
_MIN_CODE_LETTERS = 0.3
_MIN_CODE_SIGNS = 0.1
_MAX_MARKUP_SHARE = 0.3


def _is_kept_label(text: str) -> bool:
    """Dates and metadata lines are read for the header; a bare `2.` opens a heading."""
    return not text or is_metadata_line(text) or is_date_line(text) or bool(match_heading(text))


def is_noise(paragraph: str) -> bool:
    """Markup, code, SQL, bare numbers or punctuation: never a clause."""
    text = paragraph.strip()
    if "<" not in text and "&" not in text and not _ASCII_WORD.search(text):
        # No markup, code or SQL is possible: only bare numbers and punctuation are noise (fast path).
        return not _CJK.search(text) and not _is_kept_label(text)
    visible = sum(map(len, text.split()))
    if not visible or _is_kept_label(text):
        return False
    if _SQL.match(text) or sum(map(len, _MARKUP_REMNANT.findall(text))) >= _MAX_MARKUP_SHARE * visible:
        return True
    letters = sum(map(len, _ASCII_WORD.findall(text)))  # words, not letters: a 10 MB line is 8 M letters
    if not letters and not _CJK.search(text):
        return True  # bare numbers and punctuation
    return letters >= _MIN_CODE_LETTERS * visible and len(_CODE_SIGN.findall(text)) >= _MIN_CODE_SIGNS * visible


def clean_text(text: str) -> list[Paragraph]:
    """Scraped text in, clean paragraphs out (original script, original punctuation)."""
    lines = unflatten(strip_boilerplate(text.split("\n")))
    paragraphs = [
        Paragraph(p) for line in join_paragraphs(lines) for p in split_run_on_items(line) if not is_noise(p)
    ]
    # Scraped pages often print the title twice in a row.
    deduped = [p for i, p in enumerate(paragraphs) if i == 0 or p.text != paragraphs[i - 1].text]
    return drop_garbage(deduped)
