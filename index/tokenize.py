"""Lexical tokens for Chinese policy text: jieba words + character bigrams + normalised numbers.

jieba alone misses terms inside longer words (`初中班额` → `初中班/额`, so `班额` never matches);
character bigrams of every CJK run recover them. A small dictionary of policy terms keeps
`生均公用经费` or `随迁子女` whole as words, and Chinese numerals before a unit become digits so
`四十五人` and `45人` meet. Codes of letters and digits (`3+1+2`, `1+X`, `D级危房`, `211工程`) are one
token each. Abbreviations and policy slang (index/resources/abbreviations.tsv: `双减`, `义教`) bring
the tokens of their full forms, and count only where they are a word, not inside a longer one
(`义教` in `爱国主义教育`). The same function tokenises clauses and queries.
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
# Codes whose pieces mean little alone: joined codes (3+1+2, 1+x), a letter grade with the two characters
# it grades (d级危房), numbered programmes (211工程, 215计划). Matched on lower-cased, normalised text.
_CODE = re.compile(r"(?<![0-9a-z+])(?:\d+(?:\+[0-9a-z]+)+|[a-z]级(?:[\u4e00-\u9fff]{2})?|\d{3,4}(?:工程|计划))")
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
    # Abbreviations are words too (codes and bare numbers such as 985 are kept whole elsewhere).
    words = [a for a in _abbreviations() if _CJK_RUN.search(a) and not _CODE.fullmatch(a)]
    for term in [*terms.split(), *words]:
        tokenizer.add_word(term, freq=200000)
    return tokenizer


@lru_cache(maxsize=1)
def _colloquial() -> dict[str, list[str]]:
    text = resources.files("index.resources").joinpath("colloquial_terms.txt").read_text(encoding="utf-8")
    rows = [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return {row[0]: row[1:] for row in rows}


def _normalise(text: str) -> str:
    return normalise_numbers(normalize_for_matching(text).lower())


@lru_cache(maxsize=1)
def _abbreviations() -> dict[str, list[str]]:
    """index/resources/abbreviations.tsv: abbreviation -> its full forms, keyed as tokenize() writes it."""
    text = resources.files("index.resources").joinpath("abbreviations.tsv").read_text(encoding="utf-8")
    rows = [line.split("\t") for line in text.splitlines() if line.strip() and not line.startswith("#")]
    return {_normalise(abbreviation): forms.split() for abbreviation, forms, _source in rows}


def bigrams(text: str) -> list[str]:
    return [run[i : i + 2] for run in _CJK_RUN.findall(text) for i in range(len(run) - 1)]


def tokenize(text: str, abbreviations: bool = True) -> list[str]:
    """Tokens of any text (original or normalised script): codes, words, CJK bigrams, then the tokens
    of the full forms of its abbreviations (`双减` also gives those of 作业负担 and 校外培训负担).

    Clauses and queries both carry the full forms: on eval/sets/policy.jsonl that finds more than
    expanding queries only (bench/abbreviation_decisions.py, which alone passes `abbreviations=False`).
    """
    tokens = _plain_tokens(text)
    if not abbreviations:
        return tokens
    return tokens + [t for form in abbreviation_forms(tokens) for t in _plain_tokens(form)]


def _plain_tokens(text: str) -> list[str]:
    norm = _normalise(text)
    codes = _CODE.findall(norm)
    rest = _CODE.sub(" ", norm)
    stop = _stopwords()
    words = [
        w
        for w in _jieba().cut_for_search(rest)
        if _WORD.fullmatch(w) and w not in stop and (len(w) > 1 or w.isdigit())
    ]
    return codes + _without_embedded_abbreviations(rest, words + [b for b in bigrams(norm) if b not in stop])


def _without_embedded_abbreviations(text: str, tokens: list[str]) -> list[str]:
    """Drop abbreviation tokens that only occur inside a longer word: `义教` in 主义教育 is no 义务教育."""
    abbreviations = _abbreviations()
    found = {t for t in tokens if t in abbreviations}
    if not found:
        return tokens
    # jieba's accurate mode gives each character to one word; a longer abbreviation may hold a shorter
    # one (改薄 in 全面改薄).
    words = [w for w in _jieba().cut(text) if w.strip()]
    embedded = {a for a in found if not any(a in w and (w == a or w in abbreviations) for w in words)}
    return [t for t in tokens if t not in embedded]


def abbreviation_forms(tokens: list[str]) -> list[str]:
    """The full forms of the abbreviations among a text's tokens (`双减` -> 作业负担, 校外培训负担)."""
    abbreviations = _abbreviations()
    return list(dict.fromkeys(form for token in tokens for form in abbreviations.get(token, [])))


def expand_query(text: str, abbreviations: bool = True) -> list[str]:
    """A query's tokens plus the policy terms for its everyday words (`孩子` also asks for `儿童`, `子女`).

    Staff ask in everyday words; laws say 未成年人 and 监护人. Only queries are expanded with these:
    the clauses keep their own words, so an expansion can add matches but never change a clause.
    (Abbreviations are expanded on both sides, by tokenize.)
    """
    tokens = tokenize(text, abbreviations)
    norm = normalize_for_matching(text)
    expansions = [term for word, terms in _colloquial().items() if word in norm for term in terms]
    return tokens + [t for term in expansions for t in tokenize(term, abbreviations)]
