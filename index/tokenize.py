"""Lexical tokens for Chinese policy text: jieba words + character bigrams + normalised numbers.

jieba alone misses terms inside longer words (`初中班额` → `初中班/额`, so `班额` never matches);
character bigrams of every CJK run recover them. A small dictionary of policy terms keeps
`生均公用经费` or `随迁子女` whole as words, and Chinese numerals before a unit become digits so
`四十五人` and `45人` meet. The same function tokenises clauses and queries.
"""

from __future__ import annotations

import logging
import re
from functools import lru_cache
from importlib import resources

import jieba

from ingest.normalize import normalize_for_matching

_CN_NUMERAL = "零〇○一二两三四五六七八九十百千万"
_NUMERAL_WITH_UNIT = re.compile(rf"([{_CN_NUMERAL}]{{1,8}})(?=[人元名所个岁%周天年月日次班节课学时])")
_CJK_RUN = re.compile(r"[\u4e00-\u9fff]{2,}")
_WORD = re.compile(r"[\w]+", re.UNICODE)
_DIGITS = {c: i for i, c in enumerate("零一二三四五六七八九")} | {"〇": 0, "○": 0, "两": 2}
_UNITS = {"十": 10, "百": 100, "千": 1000}


def chinese_to_int(numeral: str) -> int | None:
    """`四十五` → 45, `二〇一七` → 2017, `一百二十` → 120; None when it is no number."""
    if all(c in _DIGITS for c in numeral):
        return int("".join(str(_DIGITS[c]) for c in numeral))
    total, section, digit = 0, 0, None
    for ch in numeral:
        if ch in _DIGITS:
            digit = _DIGITS[ch]
        elif ch in _UNITS:
            section += (1 if digit is None else digit) * _UNITS[ch]
            digit = None
        elif ch == "万":
            total += (section + (digit or 0)) * 10000
            section, digit = 0, None
        else:
            return None
    return total + section + (digit or 0)


def normalise_numbers(text: str) -> str:
    def to_digits(m: re.Match) -> str:
        value = chinese_to_int(m.group(1))
        return str(value) if value is not None else m.group(1)

    return _NUMERAL_WITH_UNIT.sub(to_digits, text)


@lru_cache(maxsize=1)
def _stopwords() -> frozenset[str]:
    text = resources.files("index.resources").joinpath("stopwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip() for line in text.splitlines() if line.strip())


@lru_cache(maxsize=1)
def _jieba() -> jieba.Tokenizer:
    jieba.setLogLevel(logging.WARNING)
    tokenizer = jieba.Tokenizer()
    terms = resources.files("index.resources").joinpath("policy_terms.txt").read_text(encoding="utf-8")
    for term in terms.split():
        tokenizer.add_word(term, freq=200000)
    return tokenizer


@lru_cache(maxsize=1)
def _colloquial() -> dict[str, list[str]]:
    text = resources.files("index.resources").joinpath("colloquial_terms.txt").read_text(encoding="utf-8")
    rows = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return {row[0]: row[1:] for row in rows}


def bigrams(text: str) -> list[str]:
    return [run[i : i + 2] for run in _CJK_RUN.findall(text) for i in range(len(run) - 1)]


def tokenize(text: str) -> list[str]:
    """Tokens of any text (original or normalised script): words, then CJK bigrams."""
    norm = normalise_numbers(normalize_for_matching(text).lower())
    stop = _stopwords()
    words = [
        w
        for w in _jieba().cut_for_search(norm)
        if _WORD.fullmatch(w) and w not in stop and (len(w) > 1 or w.isdigit())
    ]
    return words + [b for b in bigrams(norm) if b not in stop]


def expand_query(text: str) -> list[str]:
    """A query's tokens plus the policy terms for its everyday words (`孩子` also asks for `儿童`, `子女`).

    Staff ask in everyday words; laws say 未成年人 and 监护人. Only queries are expanded: the
    clauses keep their own words, so an expansion can add matches but never change a clause.
    """
    tokens = tokenize(text)
    norm = normalize_for_matching(text)
    expansions = [term for word, terms in _colloquial().items() if word in norm for term in terms]
    return tokens + [t for term in expansions for t in tokenize(term)]
