"""Policy metadata found in a document's header: 发文机关, 文号, date, region.

Only the header is read (title, the lines before the body, property blocks): the body
cites other documents' numbers and issuers, which are not this document's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

HEADER_CHARS = 400
# A document's own 文号 stands right under or beside its title; later numbers are citations.
NUMBER_ZONE_CHARS = 120

_CN_DIGIT = {c: i for i, c in enumerate("〇一二三四五六七八九")} | {"○": 0, "零": 0}

# 文号: issuer abbreviation, year in brackets (any bracket style, or one bracket lost), serial, 号.
_DOC_NUMBER = re.compile(r"([\u4e00-\u9fff]{1,10}?[发办字函令通]?)\s*[〔\[【(（]?\s*((?:19|20)\d{2})\s*[〕\]】)）]\s*(\d{1,4})\s*号")
_ORGAN_SUFFIX = (
    r"(?:人民代表大会常务委员会|人民政府办公厅|人民政府办公室|人民政府|教育厅|教育局|教育委员会|教育工作领导小组|"
    r"委员会|办公厅|办公室|领导小组|厅|局|部|委)"
)
_PROPERTY_ISSUER = re.compile(r"(?:【制定机关】|发布机关[:：]|发文机关[:：]|制定机关[:：])\s*([\u4e00-\u9fff]{2,30})")
_SOURCE_ISSUER = re.compile(rf"来源[:：]\s*([\u4e00-\u9fff]{{2,20}}{_ORGAN_SUFFIX})")
_AUTHOR_ISSUER = re.compile(rf"作者[:：]\s*([\u4e00-\u9fff]{{2,20}}{_ORGAN_SUFFIX})")
_TITLE_ISSUER = re.compile(rf"^([\u4e00-\u9fff]{{2,30}}?{_ORGAN_SUFFIX})(?:关于|转发|印发)")
_SIGNATURE = re.compile(rf"(?:^|\n)\s*([\u4e00-\u9fff]{{2,20}}{_ORGAN_SUFFIX})\s*\n\s*(?:\d{{4}}|[〇○零一二三四五六七八九]{{4}})年")
_PEOPLES_CONGRESS = re.compile(r"([\u4e00-\u9fff]{2,12}?)第[一二三四五六七八九十]+届人民代表大会常务委员会")
_NATIONAL_CONGRESS = re.compile(r"第[一二三四五六七八九十]+届全国人民代表大会常务委员会|全国人民代表大会常务委员会")

_LABELLED_DATE = re.compile(
    r"(?:发布时间|发布日期|公布日期|成文日期|印发日期|【公布日期】|【发布日期】)[:：]?\s*(\d{4})\s*[-年./]\s*(\d{1,2})\s*[-月./]\s*(\d{1,2})"
)
_DATE = re.compile(r"(\d{4})\s*[-年./]\s*(\d{1,2})\s*[-月./]\s*(\d{1,2})\s*日?")
_CN_DATE = re.compile(r"([〇○零一二三四五六七八九]{4})年([一二三四五六七八九十]{1,2})月([一二三四五六七八九十]{1,3})日")
_REGION = re.compile(r"^((?!某)[\u4e00-\u9fff]{2,7}?(?:自治区|特别行政区|省|自治州|市|县|区|盟|旗))")
_PROVINCE_LEVEL_CITIES = ("北京", "上海", "天津", "重庆")


@dataclass(frozen=True)
class Metadata:
    issuer: str | None = None
    doc_number: str | None = None
    date: str | None = None
    region: str | None = None


def _cn_number(text: str) -> int:
    """一 .. 三十一 as used in dates."""
    if "十" in text:
        tens, _, ones = text.partition("十")
        return (_CN_DIGIT.get(tens, 1) if tens else 1) * 10 + (_CN_DIGIT[ones] if ones else 0)
    return int("".join(str(_CN_DIGIT[c]) for c in text))


def _iso(year: int, month: int, day: int) -> str | None:
    if 1949 <= year <= 2100 and 1 <= month <= 12 and 1 <= day <= 31:
        return f"{year:04d}-{month:02d}-{day:02d}"
    return None


def find_doc_number(header: str) -> str | None:
    for m in _DOC_NUMBER.finditer(header):
        # The lazy prefix may have swallowed the sentence before the number (`…法规及吉市教发`).
        prefix = re.split(r"[及和与的、据照按于为见根]", m.group(1))[-1]
        if len(prefix) >= 2:
            return f"{prefix}〔{m.group(2)}〕{int(m.group(3))}号"
    return None


def find_date(header: str) -> str | None:
    if m := _LABELLED_DATE.search(header):
        return _iso(*map(int, m.groups()))
    candidates = []
    for m in _DATE.finditer(header):
        if iso := _iso(*map(int, m.groups())):
            candidates.append((m.start(), iso))
    for m in _CN_DATE.finditer(header):
        year = int("".join(str(_CN_DIGIT[c]) for c in m.group(1)))
        if iso := _iso(year, _cn_number(m.group(2)), _cn_number(m.group(3))):
            candidates.append((m.start(), iso))
    return min(candidates)[1] if candidates else None


def find_issuer(title: str, header: str) -> str | None:
    for pattern in (_PROPERTY_ISSUER, _SOURCE_ISSUER, _AUTHOR_ISSUER):
        if m := pattern.search(header):
            return m.group(1)
    if m := _TITLE_ISSUER.match(title):
        return m.group(1)
    if m := _SIGNATURE.search(header):
        return m.group(1)
    if m := _PEOPLES_CONGRESS.search(header):
        return f"{m.group(1)}人民代表大会常务委员会"
    if _NATIONAL_CONGRESS.search(header):
        return "全国人民代表大会常务委员会"
    return None


def find_region(issuer: str | None, title: str) -> str | None:
    for text in (issuer or "", title):
        if text.startswith(_PROVINCE_LEVEL_CITIES):
            return text[:2] + "市"
        if m := _REGION.match(text):
            return m.group(1)
    return None


def extract_metadata(title: str, header_lines: str, opening: str) -> Metadata:
    """`header_lines`: title lines, property blocks, metadata lines; `opening`: the start of the body."""
    header = header_lines + "\n" + opening[:HEADER_CHARS]
    issuer = find_issuer(title, header)
    return Metadata(
        issuer=issuer,
        doc_number=find_doc_number(f"{title}\n{header_lines}\n{opening[:NUMBER_ZONE_CHARS]}"),
        date=find_date(header),
        region=find_region(issuer, title),
    )
