"""Splitting a page that pastes several documents together, and finding each document's title.

A new document starts where the text shows one: a title line of a different document
(`…的通知`, `…实施意见`, `…会议上的讲话`, `…报告`), a scanned page whose OCR garbage was removed,
or top-level numbering (`一、`) that starts again after the previous document used it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ingest.cleaning import TERMINAL_PUNCT, Paragraph, garbage_score
from ingest.errors import EmptyDocumentError, IngestError
from ingest.headings import FAMILY_RANK, match_heading
from ingest.tables import SEPARATOR

_DOC_TYPES = (
    "实施意见|指导意见|若干意见|意见|通知|通报|实施方案|工作方案|行动方案|方案|实施办法|管理办法|办法|规定|条例|"
    "实施细则|细则|决定|讲话|报告范文|整改报告|报告|政策解读|解读|纲要|规划|计划|经验材料之[一二三四五六七八九十]+|公告|决议|批复|"
    "要点|要點"
)
_TITLE_CHARS = r"[^\s。，,；;：:！!？?]"
_TITLE_RUN = re.compile(
    r"^(?:【[^】]{2,30}】)?(?P<date>[\d〇○零一二三四五六七八九十]{4}年[\d一二三四五六七八九十]{1,2}月[\d一二三四五六七八九十]{1,3}日)?"
    rf"(?P<run>[\u4e00-\u9fff《“]{_TITLE_CHARS}{{7,80}})"
)
_DOC_TYPE = re.compile(rf"(?:{_DOC_TYPES})(?:范文)?")
MAX_TITLE_CHARS = 60
# A title inside a sentence is a citation, not a new document.
_CITATION_START = re.compile(r"^(贯彻|落实|根据|按照|依据|依照|执行|认真|结合|制定|出台|印发|转发|学习|对照|参照|依|按)")
_CITATION_REST = re.compile(r"^(的|和|与|及|等|中|、|精神|要求|规定|文件|》|”|\)|）|[，,。；;])")
# What follows a real title on a pasted page: nothing, a property block, the first heading, a date, a byline.
_AFTER_TITLE = re.compile(
    r"^(?:$|正文|文章属性|[（(]?[一二三四五六七八九十]{1,3}[、）)]|\d{4}[-年.]|作者|来源|发布|篇\d|同志们|[（(][\u4e00-\u9fff]{1,8}[〔\[]\d{4})"
)
_TITLE_CONTINUATION = re.compile(r"^[\u4e00-\u9fff《》“”、]{2,40}$")
_PROPERTY_BLOCK = re.compile(r"^(文章属性.*?正文|正文)[:：]?[-—\s]*")

MAX_STANDALONE_TITLE = 80
# A line repeats the title when it holds at least half of it.
MIN_REPEATED_TITLE_SHARE = 0.5
# A byline under a title (`校长寄语` / `校长穆耕森`) does not continue it.
_BYLINE = re.compile(r"^(?:校长|院长|园长|主任|局长|厅长|书记|部长|记者|编辑|作者|通讯员|撰稿)")


@dataclass
class DraftDocument:
    title: str
    paragraphs: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)  # title-line leftovers such as 文章属性 blocks


def _balanced(title: str) -> bool:
    return title.count("《") == title.count("》") and title.count("“") == title.count("”")


def title_of(paragraph: str) -> tuple[str, str] | None:
    """(title, rest) when the paragraph opens with a document title, else None.

    The longest prefix that ends in a document type (`…意见的通知`, not `…意见`) and is not
    a citation inside a sentence.
    """
    if match_heading(paragraph):
        return None
    m = _TITLE_RUN.match(paragraph)
    if not m:
        return None
    run, run_start = m.group("run"), m.start("run")
    ends = sorted((t.end() for t in _DOC_TYPE.finditer(run) if t.end() <= MAX_TITLE_CHARS), reverse=True)
    for end in ends:
        title, rest = run[:end], paragraph[run_start + end :]
        if len(title) >= 9 and _balanced(title) and not _CITATION_START.match(title) and not _CITATION_REST.match(rest):
            return title, rest
    return None


def _same_title(a: str, b: str) -> bool:
    a, b = (re.sub(r"[《》“”\s]", "", t) for t in (a, b))
    return bool(a) and bool(b) and (a in b or b in a)


def _is_standalone_title(paragraph: str) -> bool:
    text = paragraph.strip()
    return len(text) <= MAX_STANDALONE_TITLE and text[-1] not in TERMINAL_PUNCT and not match_heading(text)


def _strip_number_prefix(title: str) -> str:
    return re.sub(r"^【[^】]{2,30}】", "", title).strip()


# A fallback title is looked for this far into a document: a multi-megabyte one-line upload is one
# "sentence", and scoring all of it to show 30 characters cost a minute.
TITLE_SCAN_CHARS = 2000
FALLBACK_TITLE_CHARS = 30


def _fallback_title(paragraphs: list[str]) -> str:
    """A document with no title line: its first clean, substantial sentence stands in for one."""
    budget = TITLE_SCAN_CHARS
    for text in paragraphs:
        for sentence in re.split(r"[。；;！？!?]", text[:budget]):
            if len(sentence) >= 10 and garbage_score(sentence) == 0:
                return sentence[:FALLBACK_TITLE_CHARS] + ("…" if len(sentence) > FALLBACK_TITLE_CHARS else "")
        budget -= len(text)
        if budget <= 0:
            break
    return paragraphs[0][:FALLBACK_TITLE_CHARS] if paragraphs else ""


def _cites(doc: DraftDocument, title: str) -> bool:
    """A notice that transmits an attachment quotes its title: the attachment is the same document."""
    return any(f"《{title}》" in text for text in doc.paragraphs)


# A document shorter than this is a page header or a caption, not a document of its own.
MIN_DOCUMENT_CHARS = 50


def split_documents(paragraphs: list[Paragraph], fallback_title: str) -> list[DraftDocument]:
    docs: list[DraftDocument] = []
    current: DraftDocument | None = None
    used_top_level = in_law = False

    def start(title: str, header: list[str]) -> DraftDocument:
        nonlocal used_top_level, in_law
        used_top_level = in_law = False
        doc = DraftDocument(title=title, header=header)
        docs.append(doc)
        return doc

    for para in paragraphs:
        text = para.text
        heading = match_heading(text)
        found = title_of(text)
        if current is None:
            if _is_standalone_title(text):
                current = start(_strip_number_prefix(text), [text])
                continue
            current = start("", [])
        elif (
            found
            # A page header (`反霸凌`) that the real title contains is replaced by it.
            and (not _same_title(found[0], current.title) or (not current.paragraphs and len(found[0]) > len(current.title)))
            and not _cites(current, found[0])
            and (_AFTER_TITLE.match(found[1].strip()) or sum(map(len, current.paragraphs)) < MIN_DOCUMENT_CHARS)
        ):
            title, rest = found
            if sum(map(len, current.paragraphs)) >= MIN_DOCUMENT_CHARS:
                current = start(title, [])
            else:  # the page header had no body of its own: the real document starts here
                current.title = title
            current.header.append(text[: len(text) - len(rest)])
            rest = rest.strip()
            if block := _PROPERTY_BLOCK.match(rest):
                current.header.append(block.group(0))
                rest = rest[block.end() :]
            if rest:
                current.paragraphs.append(rest)
            continue
        elif para.after_garbage and sum(map(len, current.paragraphs)) >= MIN_DOCUMENT_CHARS:
            current = start("", [])
        elif heading and heading.family == "cn_num" and heading.address == "一" and used_top_level and not in_law:
            # Numbering starts again: another document, whose opening paragraph came just before.
            opening = current.paragraphs.pop() if current.paragraphs and not match_heading(current.paragraphs[-1]) else None
            current = start("", [])
            if opening:
                current.paragraphs.append(opening)
        if heading and heading.family == "cn_num":
            used_top_level = True
        # Inside a law, 一、 items are an article's 项 and restart in every article.
        in_law = in_law or bool(heading and heading.rank <= FAMILY_RANK["article"])
        if (
            current.title
            and _same_title(text, current.title)
            and len(text) >= len(current.title) * MIN_REPEATED_TITLE_SHARE
            and _is_standalone_title(text)
        ):
            continue  # the title printed again (`合肥市教育局` under a notice is its signature, not its title)
        if (
            current.title
            and not current.paragraphs
            and _TITLE_CONTINUATION.match(text)
            and not _BYLINE.match(text)
            and not heading
        ):
            current.title += text  # a long title wrapped onto a second line
            current.header.append(text)
            continue
        current.paragraphs.append(text)

    for doc in docs:
        doc.title = clean_title(doc.title) or _fallback_title(doc.paragraphs) or fallback_title
    return [d for d in docs if d.paragraphs]


# ---------------------------------------------------------------- scraped titles

_TITLE_SPLIT = re.compile(r"(\s*(?:-{1,3}|—{2}|_{1,2}|\||｜)\s*)")
# What a site appends to a page title: its columns, departments and its own name.
_SITE_PART = re.compile(
    r"(?:网|网站|官网|门户|首页|主页|频道|栏目|平台|系统|政务公开|信息公开|通知公告|新闻|动态|要闻|"
    r"中学|小学|学校|大学|学院|幼儿园|教育局|教育厅|教育委员会|政府|办公室|党政办|校办|办)$"
)
_BREADCRUMB = re.compile(r"^(?:(?:当前位置|您的位置|您现在的位置)[:：]?\s*)?(?:[^>»]{1,20}\s*(?:>|»|->|＞)\s*)+")
_DATE_WIDGET = re.compile(
    r"\s*(?:今天是.*|(?:发布时间|发布日期|发表时间|时间|日期)[:：].*|\s\d{4}[-./]\d{1,2}[-./]\d{1,2}(?:\s+\d{1,2}:\d{2}(?::\d{2})?)?)$"
)


def clean_title(title: str) -> str:
    """A scraped title without breadcrumbs, the site's name and columns, or date widgets."""
    title = _DATE_WIDGET.sub("", _BREADCRUMB.sub("", title.strip())).strip()
    parts = _TITLE_SPLIT.split(title)
    # parts alternate text, separator, text …: cut at the first separator after which only site parts follow.
    for i in range(1, len(parts), 2):
        head, tail = "".join(parts[:i]).strip(), parts[i + 1 :: 2]
        if len(head) >= 6 and tail and all(_SITE_PART.search(t.strip()) for t in tail):
            return head
    return title


def has_document_text(paragraphs: list[str]) -> bool:
    """Sentences, table rows or long lines, not only titles, labels and links (a listing page, a page
    whose body is missing)."""
    return any(
        len(p) >= MIN_LONG_LINE or (len(p) >= MIN_BODY_CHARS and (_BODY_SIGN.search(p) or SEPARATOR in p))
        for p in paragraphs
    )


MIN_BODY_CHARS = 15
# A law's adoption record (`1998年5月29日 重庆市第一届人民代表大会常务委员会第九次会议通过`) has no comma.
MIN_LONG_LINE = 30
_BODY_SIGN = re.compile(r"[。；;！!？?，,]")


class NoDocumentTextError(EmptyDocumentError):
    """The file is a page with no document on it: a title and metadata without a body, or a listing."""

    code = "no_document_text"

    REASON = (
        "no document text: the page shows only a title, metadata, menus or a list of other documents' titles "
        "(a listing page, or a page whose body is missing)"
    )

    def __init__(self, path: str) -> None:
        IngestError.__init__(self, f"{path}: {self.REASON}")
        self.path = path
        self.reason = self.REASON
