"""Scraped pages among the demo corpus: their markup, menus and tables never reach the search results.

The server answers over data/demo + every file of ../shared/corpus/messy, and the page is looked at
in Debian's chromium; the screenshot goes to test-output/ (docs/search-messy.png is a copy of it).
"""

from __future__ import annotations

import re

import httpx
import pytest

from api.app import create_app
from ingest.pipeline import find_files, ingest_files
from policyqa.settings import Settings
from tests.conftest import DEMO, HANG_S, REPO, SHARED_CORPUS, serving
from tests.test_web_page import CHROMIUM, CHROMIUM_ARGS, SHOTS, browser_context
from writes.commit import update_index

MESSY = SHARED_CORPUS / "messy"
MARKUP = re.compile(r"</?[A-Za-z][^>]{0,80}>|&[a-z]+;|&#\d+;|\\r|\\n|FONT FACE|TEXTFORMAT")


def _mostly_prose(text: str) -> bool:
    cjk = len(re.findall(r"[\u4e00-\u9fff]", text))
    return cjk >= 0.4 * len(re.sub(r"\s", "", text))


@pytest.fixture(scope="module")
def messy_server(tmp_path_factory, encoder):
    if not MESSY.is_dir():
        pytest.skip(f"messy corpus not found at {MESSY}")
    root = tmp_path_factory.mktemp("messy")
    pages = [p for p in find_files([MESSY]) if p.name != "SOURCES.md"]  # the corpus's notes, not a page
    parsed = ingest_files(list(find_files([DEMO])) + pages)
    update_index(root / "index", encoder, parsed.documents, parsed.clauses)
    settings = Settings(index_dir=root / "index", upload_dir=root / "uploads", models_dir=REPO / "data" / "models")
    with serving(create_app(settings, encoder)) as address:
        yield address, parsed


@pytest.mark.parametrize("query", ["班额标准", "招生", "教师培训经费", "放假安排"])
def test_the_top_ten_carry_no_markup_and_no_bare_number_rows(messy_server, query):
    url, _ = messy_server
    results = httpx.get(url + "/api/search", params={"q": query, "k": 10}, timeout=HANG_S).json()["results"]
    assert results
    for r in results:
        assert not MARKUP.search(r["text"]), r["text"][:200]
        assert _mostly_prose(r["text"]) or " · " in r["text"], r["text"][:200]  # prose, or a table row with headers
        assert not r["document"]["title"].startswith("--") and all("\r" not in h for h in r["heading_path"])


@pytest.mark.browser
def test_the_search_page_for_the_class_size_shows_the_demo_clause_first(messy_server):
    from playwright.sync_api import sync_playwright

    url, _ = messy_server
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser_context(browser, viewport={"width": 1280, "height": 1600}).new_page()
        page.goto(url + "/?q=" + "班额标准")
        page.wait_for_selector("#results .result")
        texts = page.locator("#results .clause-text").all_inner_texts()
        assert "小学班额不超过45人" in texts[0]
        assert not any(MARKUP.search(t) for t in texts)
        page.screenshot(path=str(SHOTS / "search-messy.png"), full_page=True)
        browser.close()
