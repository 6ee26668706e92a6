"""Normalisation for matching: traditional to simplified, full-width to half-width.

Users always see the original text; only `norm_text` and queries go through here.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

import opencc

_WHITESPACE_AND_PUNCT = re.compile(r"[\s\W_]+", re.UNICODE)


@lru_cache(maxsize=1)
def _t2s() -> opencc.OpenCC:
    return opencc.OpenCC("t2s")


def to_simplified(text: str) -> str:
    return _t2s().convert(text)


def fold_width(text: str) -> str:
    """NFKC folds full-width ASCII, （）：；， and the ideographic space to their half-width forms."""
    return unicodedata.normalize("NFKC", text)


def normalize_for_matching(text: str) -> str:
    return fold_width(to_simplified(text))


def compact(text: str) -> str:
    """Normalised text with no whitespace or punctuation: what phrase matching compares."""
    return _WHITESPACE_AND_PUNCT.sub("", normalize_for_matching(text))
