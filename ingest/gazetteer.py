"""Real place names: the regions a document can come from (`ingest/resources/places.tsv`).

A region is only ever a name in this list (全国 3,511 divisions: provinces, prefectures,
counties), so `关于公布绍兴市` or `面向本辖区` can never become one.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

PLACES_FILE = Path(__file__).parent / "resources" / "places.tsv"

_SUFFIX = re.compile(r"(?:特别行政区|自治区|自治州|自治县|地区|省|市|盟)$")
# `新疆维吾尔自治区` → `新疆`, `恩施土家族苗族自治州` → `恩施`.
_PEOPLES = re.compile(r"(?:[\u4e00-\u9fff]{1,5}?族)+$")
# After a short name these make it another thing (中山大学 is in Guangzhou, not 中山市).
_NOT_A_PLACE_AFTER = re.compile(r"^(?:大学|路|街|公园)")


class Gazetteer:
    def __init__(self, rows: list[tuple[str, str]]) -> None:
        self.full: dict[str, str] = {}  # name → adcode
        self.short: dict[str, str] = {}  # short name of a province or city → full name
        for code, name in rows:
            if len(name) < 3:
                continue
            self.full.setdefault(name, code)
            is_city = code.endswith("00") or name.endswith("市")
            short = _PEOPLES.sub("", _SUFFIX.sub("", name))
            if is_city and len(short) >= 2 and short != name:
                # A province wins over a city of the same short name (吉林省 over 吉林市).
                if short not in self.short or code.endswith("0000"):
                    self.short[short] = name
        self.longest = max(map(len, self.full))
        self.starts = {name[:2] for name in self.full}  # a cheap first test at each position

    def place_at_start(self, text: str, *, short_names: bool = False) -> str | None:
        """The full name of the place `text` starts with (`北京市西城区…` → 北京市)."""
        if text[:2] in self.starts:
            for n in range(min(self.longest, len(text)), 1, -1):
                if text[:n] in self.full:
                    return text[:n]
        if short_names:
            for n in (4, 3, 2):
                if text[:n] in self.short and not _NOT_A_PLACE_AFTER.match(text[n:]):
                    return self.short[text[:n]]
        return None

    def first_place(self, text: str) -> str | None:
        """The first full place name anywhere in `text` (`第二届广州市文明校园…` → 广州市)."""
        for i in range(len(text) - 1):
            if place := self.place_at_start(text[i:]):
                return place
        return None


@lru_cache(maxsize=1)
def gazetteer() -> Gazetteer:
    rows = []
    for line in PLACES_FILE.read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            code, name = line.split("\t")
            rows.append((code, name))
    return Gazetteer(rows)
