"""The heading grammar of Chinese policy and legal text.

Families, from the outermost: 第X编 > 第X章 > 第X节 > 第X条 > 一、 > （一） > 1. > （1） > ①.
A document may use any subset, in any mix; `match_heading` only recognises a
paragraph's leading marker, and the clause builder decides nesting from the
family's rank. See docs/clauses.md for examples from the demo corpus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CN_DIGITS = "零〇一二三四五六七八九十百千两"
_CN = f"[{CN_DIGITS}]"

# Rank of each family: a heading closes every open heading of equal or deeper rank.
FAMILY_RANK = {
    "part": 0,  # 第X编
    "chapter": 1,  # 第X章
    "section": 2,  # 第X节
    "article": 3,  # 第X条
    "cn_num": 4,  # 一、
    "paren_cn": 5,  # （一）
    "arabic": 6,  # 1. 1、 1．
    "paren_arabic": 7,  # （1）
    "circled": 8,  # ①
}

# Sentence ends: a run-in heading's title stops at the first of these.
TITLE_END = "。；;：:！!？?"
MAX_TITLE_CHARS = 40

_DIVISION = re.compile(rf"^第({_CN}{{1,4}}|\d{{1,3}})([编章节])(?:[\s\u3000]+(.{{0,40}})|$)")
# 第X条 is an article only when followed by a space or a sentence that is not a cross-reference
# ("第十条规定的…", "第三条、第四条" start sentences that merely cite articles).
_ARTICLE = re.compile(
    rf"^(第(?:{_CN}{{1,9}}|\d{{1,4}})条(?:之{_CN}{{1,3}})?)(?:[\s\u3000]+|(?![规的、至和或及第中所（(]))"
)
_CN_NUM = re.compile(r"^([一二三四五六七八九十]{1,3})[、．]\s*")
_PAREN_CN = re.compile(r"^[（(]([一二三四五六七八九十]{1,3})[）)]\s*")
_ARABIC = re.compile(r"^(\d{1,2})(?:[、．]|\.(?!\d))\s*")
_PAREN_ARABIC = re.compile(r"^[（(](\d{1,2})[）)]\s*")
_CIRCLED = re.compile(r"^([\u2460-\u2473])\s*")

_LIST_PATTERNS = (
    ("cn_num", _CN_NUM),
    ("paren_cn", _PAREN_CN),
    ("arabic", _ARABIC),
    ("paren_arabic", _PAREN_ARABIC),
    ("circled", _CIRCLED),
)

# A marker at the start of a paragraph, used to split paragraphs that run several items together.
INLINE_MARKER = re.compile(
    r"(?:[一二三四五六七八九十]{1,3}、|[（(][一二三四五六七八九十]{1,3}[）)]|\d{1,2}[、．](?!\d)|[（(]\d{1,2}[）)])"
)


@dataclass(frozen=True)
class Heading:
    family: str
    label: str  # the marker as written, e.g. "（三）", "2.", "第十条"
    address: str  # the marker in address form, e.g. "(三)", "2", "第十条"
    title: str  # what the heading path shows, e.g. "2.深入推进城乡一体化改革发展"
    run_in: bool  # the paragraph goes on after the title: it is body text too

    @property
    def rank(self) -> int:
        return FAMILY_RANK[self.family]


def _address(family: str, number: str) -> str:
    if family in ("paren_cn", "paren_arabic"):
        return f"({number})"
    return number


def _title_and_run_in(paragraph: str) -> tuple[str, bool]:
    """A short paragraph with no sentence end is a heading line; otherwise its first sentence is."""
    stripped = paragraph.strip()
    if len(stripped) <= MAX_TITLE_CHARS and not any(ch in stripped for ch in TITLE_END):
        return stripped.rstrip("，,、"), False
    end = min((i for i, ch in enumerate(stripped) if ch in TITLE_END), default=len(stripped))
    title = stripped[:end]
    if len(title) > MAX_TITLE_CHARS:
        title = title[:MAX_TITLE_CHARS] + "…"
    return title, True


def match_heading(paragraph: str) -> Heading | None:
    """The heading that starts `paragraph`, or None when it starts with ordinary text."""
    text = paragraph.lstrip(" \u3000\t")
    if not text:
        return None
    if m := _DIVISION.match(text):
        kind = {"编": "part", "章": "chapter", "节": "section"}[m.group(2)]
        label = f"第{m.group(1)}{m.group(2)}"
        title = text.strip() if len(text.strip()) <= MAX_TITLE_CHARS else label
        return Heading(kind, label, label, re.sub(r"[\s\u3000]+", " ", title), run_in=False)
    if m := _ARTICLE.match(text):
        label = m.group(1)
        return Heading("article", label, label, label, run_in=True)
    for family, pattern in _LIST_PATTERNS:
        if m := pattern.match(text):
            title, run_in = _title_and_run_in(text)
            if not run_in and len(text) == m.end():
                title = m.group(0).strip()
            return Heading(family, m.group(0).strip(), _address(family, m.group(1)), title, run_in)
    return None
