"""The staff page in a real headless browser: Debian's chromium driven by Playwright, against a real server.

Screenshots go to test-output/ (gitignored) so that a failed run can be looked at.
wait_for_function predicates are arrow functions: Playwright evals an expression string on every poll,
which the page's Content-Security-Policy (no 'unsafe-eval') refuses.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from urllib.parse import quote

import pytest

from tests.conftest import HANG_S, REPO

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Without the background-networking flags chromium keeps dialling Google, which this machine refuses.
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SHOTS = REPO / "test-output"
# A click or a search that shows nothing for two minutes has hung, however slow the machine; a write (parsing and
# embedding whole laws) is waited for as long as any test waits for a job.
PAGE_WAIT_MS = 120_000
JOB_WAIT_MS = HANG_S * 1000


def browser_context(browser, **options):
    """A new browser context (a desktop window unless `options` say otherwise) with this suite's waits."""
    context = browser.new_context(**{"viewport": {"width": 1280, "height": 900}, "locale": "zh-CN", **options})
    context.set_default_timeout(PAGE_WAIT_MS)
    return context


@pytest.fixture(scope="module")
def page(live_server):
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make browser` (as root) or `apt-get install chromium`")
    SHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        page = browser_context(browser).new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        # Anything that leaves the machine (a CDN font, an analytics script) would fail here.
        outside: list[str] = []
        page.on("request", lambda r: None if r.url.startswith(live_server) else outside.append(r.url))
        page.goto(live_server + "/")
        yield page
        assert not errors, f"JavaScript errors on the page: {errors}"
        assert not outside, f"the page asked for resources outside the server: {outside}"
        browser.close()


def _search(page, query: str) -> None:
    page.fill("#q", query)
    _submit_and_wait(page)
    page.wait_for_selector("#results .result")


def _submit_and_wait(page) -> None:
    """Submit and wait for this search's answer (the results of the previous one are still on the page)."""
    page.evaluate("document.querySelector('#search-status').textContent = ''")
    page.click("#search-form button[type=submit]")
    page.wait_for_function("() => !['', '检索中…'].includes(document.querySelector('#search-status').textContent)")


def test_search_shows_the_class_size_clause_first_with_the_term_highlighted(page):
    page.wait_for_function("() => document.querySelector('#stats').textContent.includes('份文件')")
    _search(page, "班额标准")
    first = page.locator("#results .result").first
    assert "小学班额不超过45人" in first.locator(".clause-text").inner_text()
    assert "班额" in first.locator(".clause-text mark").all_inner_texts()
    assert first.locator(".doc-title").inner_text() == "关于印发《大力提升义务教育工作质量实施意见》的通知"
    assert "鞍山市教育局" in first.locator(".meta").inner_text()
    assert first.locator(".breadcrumb li").all_inner_texts()[0] == "二、具体措施"
    assert first.locator(".address").inner_text() == "二(三)2"
    page.screenshot(path=str(SHOTS / "search.png"))


def test_the_surrounding_clauses_expand_under_a_result(page):
    _search(page, "班额标准")
    first = page.locator("#results .result").first
    first.locator(".expand-context").click()
    context = first.locator(".context")
    context.locator(".context-clause.current").wait_for()
    assert context.locator(".context-clause").count() >= 3
    assert "小学班额不超过45人" in context.locator(".context-clause.current").inner_text()


def test_the_document_view_marks_the_clause(page):
    _search(page, "班额标准")
    page.locator("#results .result").first.locator(".open-document").click()
    marked = page.locator("#viewer-body .doc-clause.current")
    marked.wait_for()
    assert "小学班额不超过45人" in marked.inner_text()
    assert page.locator("#viewer-title").inner_text() == "关于印发《大力提升义务教育工作质量实施意见》的通知"
    # The whole document is there, not only the clause.
    assert len(page.locator("#viewer-body").inner_text()) > 5 * len(marked.inner_text())
    page.screenshot(path=str(SHOTS / "document.png"))
    page.click("#viewer-close")
    assert page.locator("#viewer").is_hidden()


def test_the_mode_switch_and_filters_change_the_search(page):
    _search(page, "班额标准")
    page.check("input[name=mode][value=lexical]")
    page.wait_for_function("() => document.querySelector('#search-status').textContent.startsWith('关键词检索')")
    assert "mode=lexical" in page.url
    page.select_option("#filter-doc", "001_44f39c8b7c3ae9c1")
    page.wait_for_function("() => location.search.includes('doc=001_44f39c8b7c3ae9c1')")
    chosen = page.locator("#filter-doc option:checked").inner_text()
    assert set(page.locator("#results .doc-title").all_inner_texts()) == {chosen}
    page.select_option("#filter-doc", "")
    page.fill("#filter-year", "1950")
    _submit_and_wait(page)
    assert page.locator("#results .result").count() == 0
    assert "没有找到" in page.locator("#search-status").inner_text()
    page.fill("#filter-year", "")
    page.check("input[name=mode][value=hybrid]")


def test_a_bad_query_shows_the_servers_message(page):
    # Over the 1,000-character limit: the input's maxlength would cut it, so a script lifts it first.
    page.evaluate("document.querySelector('#q').removeAttribute('maxlength')")
    page.fill("#q", "班额" * 600)
    _submit_and_wait(page)
    status = page.locator("#search-status")
    assert "检索失败" in status.inner_text() and "1000" in status.inner_text().replace(",", "")
    page.evaluate("document.querySelector('#q').setAttribute('maxlength', '1000')")


# A real short notice that quotes an attack string (one tag: a file with three or more is read as markup
# and its tags dropped at ingest, see docs/clauses.md).
INJECTING_NOTICE = """关于开展中小学校网站安全自查的通知

各区县教育局，各直属学校：
近期检查发现，部分学校网站的留言板和收费公示栏目未对来访者提交的内容进行过滤，存在被植入恶意脚本的风险。为保障师生和家长的信息安全，现就开展学校网站安全自查有关事项通知如下。

一、自查内容
各校应当逐一检查公示收费项目的栏目和留言板：在留言板中提交<img src=x onerror="window.injected=1">这样的测试内容后，页面应当原样显示这段文字，不得执行其中的脚本，也不得把它当作图片显示。发现问题的，应当立即关闭相关栏目，并联系网站建设单位在一周内完成整改。

二、工作要求
请于12月31日前完成自查，并将整改情况报送市教育局。
"""


def test_document_text_cannot_inject_html(page, live_server):
    import httpx

    files = {"files": ("网站安全自查通知.txt", INJECTING_NOTICE.encode())}
    response = httpx.post(live_server + "/api/documents?wait=true", files=files, timeout=HANG_S)
    assert response.status_code == 200, response.text
    doc_id = response.json()["documents"][0]["doc_id"]
    try:
        _search(page, "公示收费项目的栏目和留言板")
        hit = page.locator("#results .result", has_text="网站安全自查").first
        assert '<img src=x onerror="window.injected=1">' in hit.locator(".clause-text").inner_text()
        # The whole document in the viewer is text too.
        hit.locator(".open-document").click()
        page.locator("#viewer-body .doc-clause.current").wait_for()
        assert "<img src=x" in page.locator("#viewer-body").inner_text()
        assert page.locator("#results img, #viewer img").count() == 0
        assert page.evaluate("window.injected") is None
        page.click("#viewer-close")
    finally:
        httpx.delete(f"{live_server}/api/documents/{doc_id}", timeout=HANG_S)


def test_the_chat_tab_answers_with_clickable_citations(page):
    page.click("#tab-chat")
    page.fill("#chat-input", "小学一个班最多多少人?")
    page.click("#chat-form button[type=submit]")
    answer = page.locator("#conversation .message.assistant:not(.pending)").last
    answer.wait_for()
    assert "45" in answer.locator(".answer-text").inner_text()
    assert answer.locator(".citation").first.inner_text() == "[1]"
    assert "大力提升义务教育工作质量实施意见" in answer.locator(".sources li").first.inner_text()
    # A follow-up reads the conversation.
    page.fill("#chat-input", "那初中呢?")
    page.click("#chat-form button[type=submit]")
    page.wait_for_function("() => document.querySelectorAll('#conversation .message.assistant:not(.pending)').length >= 2")
    follow_up = page.locator("#conversation .message.assistant").last
    assert "50" in follow_up.locator(".answer-text").inner_text()
    page.screenshot(path=str(SHOTS / "chat.png"), full_page=True)
    follow_up.locator(".citation").first.click()
    page.locator("#viewer-body .doc-clause.current").wait_for()
    page.click("#viewer-close")
    page.click("#tab-search")


def test_a_bad_chat_question_shows_the_servers_message(page):
    # /v1 errors come in OpenAI's shape ({"error": {"message": ...}}), not the search API's.
    page.click("#tab-chat")
    page.evaluate("document.querySelector('#chat-input').removeAttribute('maxlength')")
    page.fill("#chat-input", "班额" * 600)
    page.click("#chat-form button[type=submit]")
    failed = page.locator("#conversation .message.assistant.error").last
    failed.wait_for()
    assert "问答失败" in failed.inner_text() and "1000" in failed.inner_text().replace(",", "")
    page.evaluate("document.querySelector('#chat-input').setAttribute('maxlength', '1000')")
    page.click("#tab-search")


@pytest.fixture
def phone(page, live_server):
    """The page as a 390 px phone shows it."""
    context = browser_context(page.context.browser, viewport={"width": 390, "height": 844}, is_mobile=True,
                              has_touch=True, device_scale_factor=2)
    phone = context.new_page()
    phone.goto(live_server + "/")
    yield phone
    context.close()


def test_on_a_phone_buttons_keep_their_words_and_the_first_result_is_in_view(phone):
    for button in ("#tab-search", "#tab-chat", "#search-form button[type=submit]"):
        box = phone.locator(button).bounding_box()
        assert box["height"] < 48 and box["width"] > 2 * box["height"] / 1.5, (button, box)  # one line
    assert not phone.locator("#filter-issuer").is_visible()  # folded under 筛选与选项
    _search(phone, "班额标准")
    first = phone.locator("#results .result").first.bounding_box()
    assert first["y"] < 844 * 0.4, first
    phone.screenshot(path=str(SHOTS / "phone-search.png"))
    phone.click("#search-options summary")
    assert phone.locator("#filter-issuer").is_visible()


def test_the_library_uploads_corrects_and_removes_documents(page, live_server):
    import httpx

    from tests.conftest import LAWS

    files = [LAWS / "education" / "006_上海市实施教师法办法.txt", LAWS / "education" / "007_上海市教育督导条例.txt"]
    listed = lambda: {d["doc_id"] for d in httpx.get(f"{live_server}/api/documents").json()["documents"]}  # noqa: E731
    known = listed()
    page.click("#tab-library")
    page.wait_for_selector("#library-table tbody tr")
    before = page.locator("#library-table tbody tr").count()
    page.set_input_files("#upload-input", [str(f) for f in files])
    page.wait_for_selector("#upload-jobs .job.done", timeout=JOB_WAIT_MS)
    outcome = page.locator("#upload-jobs .job.done .job-outcome li.added")
    assert outcome.count() == 2 and "上海市教育督导条例" in " ".join(outcome.all_text_contents())
    page.wait_for_function(f"() => document.querySelectorAll('#library-table tbody tr').length === {before + 2}")
    page.screenshot(path=str(SHOTS / "library.png"), full_page=True)

    assert not page.locator("#metadata-form").is_visible()
    row = page.locator("#library-table tbody tr", has_text="上海市教育督导条例")
    doc_id = row.get_attribute("data-doc-id")
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", row.locator("td.added").inner_text())  # 入库时间
    row.locator("button.edit").click()
    page.fill("#metadata-form input[name=title]", "上海市教育督导条例（2024年修正）")
    page.fill("#metadata-form input[name=issuer]", "上海市人民代表大会常务委员会")
    page.click("#metadata-form button[type=submit]")
    page.wait_for_selector("#library-table tbody tr >> text=上海市教育督导条例（2024年修正）", timeout=JOB_WAIT_MS)

    # Its own page: the clauses in order as the parser cut them, with addresses and heading paths.
    page.locator("#library-table tbody tr", has_text="上海市教育督导条例（2024年修正）").locator("td.title a").click()
    page.wait_for_selector("#document-clauses .clause-item")
    assert f"document={quote(doc_id)}" in page.url and page.locator("#library-list").is_hidden()
    assert page.locator("#document-title").inner_text() == "上海市教育督导条例（2024年修正）"
    served = httpx.get(f"{live_server}/api/documents/{doc_id}").json()["clause_spans"]
    addresses = page.locator("#document-clauses .clause-item .address").all_inner_texts()
    assert addresses == [c["address"] for c in served] and "第一条" in addresses
    first_article = page.locator("#document-clauses .clause-item", has_text="第一条").first
    assert first_article.locator(".breadcrumb li").all_inner_texts()[0].startswith("第一章")
    page.screenshot(path=str(SHOTS / "library-document.png"))

    # Re-parse it (after a parser upgrade): the same clauses, the correction kept.
    page.click("#document-reparse")
    page.wait_for_function("() => document.querySelector('#document-status').textContent.startsWith('重新解析完成')",
                           timeout=JOB_WAIT_MS)
    assert f"{len(served)} 个条款" in page.locator("#document-status").inner_text()
    assert page.locator("#document-title").inner_text() == "上海市教育督导条例（2024年修正）"

    # Search within it: the search tab opens with the document chosen; every result comes from it.
    page.click("#document-search")
    assert page.locator("#filter-doc").input_value() == doc_id and f"doc={quote(doc_id)}" in page.url
    page.fill("#q", "督导报告")
    _submit_and_wait(page)
    assert set(page.locator("#results .doc-title").all_text_contents()) == {"上海市教育督导条例（2024年修正）"}
    page.select_option("#filter-doc", "")

    page.click("#tab-library")
    page.wait_for_selector("#library-table tbody tr")
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator(f"#library-table tbody tr[data-doc-id='{doc_id}'] button.remove").click()
    page.wait_for_function(f"() => !document.querySelector(\"#library-table tbody tr[data-doc-id='{doc_id}']\")")
    hits = httpx.get(f"{live_server}/api/search", params={"q": "上海市教育督导条例", "k": 20}).json()["results"]
    assert all(h["document"]["doc_id"] != doc_id for h in hits)
    for added in listed() - known:  # leave the shared server as the other tests found it
        httpx.delete(f"{live_server}/api/documents/{added}", timeout=HANG_S)
    assert listed() == known


def test_the_library_on_a_phone_lays_documents_out_as_cards(phone):
    phone.click("#tab-library")
    phone.wait_for_selector("#library-table tbody tr")
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= 390  # nothing to scroll sideways
    title = phone.locator("#library-table tbody tr td.title").first.bounding_box()
    assert title["width"] > 300, title  # a card's title runs across the screen, not down a narrow column
    assert phone.locator(".file-button").is_visible()
    phone.screenshot(path=str(SHOTS / "phone-library.png"))
    phone.locator("#library-table tbody tr td.title a").first.click()
    phone.wait_for_selector("#document-clauses .clause-item")
    for button in ("#document-search", "#document-edit", "#document-reparse", "#document-remove"):
        box = phone.locator(button).bounding_box()
        assert box["height"] < 48 and box["x"] + box["width"] <= 390, (button, box)
    assert phone.evaluate("() => document.documentElement.scrollWidth") <= 390


KEY = "bureau-key-2026"


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory, encoder):
    """A server with an API key and, to begin with, no index at all: a bureau's first day."""
    from api.app import create_app
    from policyqa.settings import Settings
    from tests.conftest import serving

    root = tmp_path_factory.mktemp("keyed")
    settings = Settings(index_dir=root / "index", upload_dir=root / "uploads", api_key=KEY,
                        models_dir=REPO / "data" / "models", max_file_bytes=5 * 1024 * 1024)
    with serving(create_app(settings, encoder)) as address:
        yield address


def test_with_an_api_key_the_page_asks_for_it_once_and_says_when_it_is_wrong(page, keyed_server):
    import httpx

    from tests.conftest import SEEDS

    def documents():
        response = httpx.get(f"{keyed_server}/api/documents")
        return {} if response.status_code == 503 else {d["doc_id"]: d for d in response.json()["documents"]}

    context = browser_context(page.context.browser)
    try:
        staff = context.new_page()
        errors: list[str] = []
        staff.on("pageerror", lambda exc: errors.append(str(exc)))
        staff.goto(keyed_server + "/")
        staff.click("#tab-library")
        staff.wait_for_function("() => document.querySelector('#library-count').textContent.includes('文件库还是空的')")
        assert "最多 50 个，每个不超过 5 MB" in staff.locator("#upload-hint").inner_text()  # this server's setting
        assert ".docx" in staff.locator("#upload-input").get_attribute("accept")

        # Two seed files by the file input: the server answers 401, the page asks for the key.
        staff.set_input_files("#upload-input", [str(SEEDS["000"]), str(SEEDS["002"])])
        dialog = staff.locator("#key-dialog")
        dialog.wait_for(state="visible")
        assert staff.locator("#key-error").is_hidden()
        staff.fill("#key-input", "wrong-key")
        staff.click("#key-dialog button[value=ok]")
        staff.wait_for_function("() => document.querySelector('#key-dialog').open && "
                                "!document.querySelector('#key-error').hidden")
        assert "API 密钥不正确" in staff.locator("#key-error").inner_text()
        staff.screenshot(path=str(SHOTS / "library-key.png"))
        assert documents() == {}  # the refused tries changed nothing
        staff.fill("#key-input", KEY)
        staff.click("#key-dialog button[value=ok]")
        staff.wait_for_selector("#upload-jobs .job.done", timeout=JOB_WAIT_MS)
        assert staff.locator("#upload-jobs .job.done .job-outcome li.added").count() == 2
        assert staff.evaluate("() => sessionStorage.getItem('policyqa-key')") == KEY
        assert KEY not in staff.url
        staff.wait_for_function("() => document.querySelectorAll('#library-table tbody tr').length === 2")
        staff.screenshot(path=str(SHOTS / "library-keyed.png"), full_page=True)

        # The search finds them.
        staff.click("#tab-search")
        _search(staff, "班额标准")
        assert "小学班额不超过45人" in staff.locator("#results .result .clause-text").first.inner_text()

        # The next write uses the key it has: no second prompt.
        staff.click("#tab-library")
        staff.locator("#library-table tbody tr", has_text="大力提升义务教育工作质量").locator("button.edit").click()
        staff.fill("#metadata-form input[name=region]", "辽宁省鞍山市")
        staff.click("#metadata-form button[type=submit]")
        staff.wait_for_selector("#library-table tbody tr >> text=辽宁省鞍山市", timeout=JOB_WAIT_MS)
        assert not dialog.is_visible()
        assert not errors, errors
    finally:
        context.close()

    # Another tab has no key: cancelling the prompt says why nothing happened, and nothing did.
    context = browser_context(page.context.browser)
    try:
        other = context.new_page()
        other.goto(keyed_server + "/")
        other.click("#tab-library")
        other.wait_for_selector("#library-table tbody tr")
        other.once("dialog", lambda confirm: confirm.accept())
        other.locator("#library-table tbody tr button.remove").first.click()
        other.locator("#key-dialog").wait_for(state="visible")
        other.click("#key-dialog button[value=cancel]")
        other.wait_for_function("() => document.querySelector('#library-count').textContent.startsWith('删除失败')")
        assert "未输入 API 密钥" in other.locator("#library-count").inner_text()
        assert len(documents()) == 2
    finally:
        context.close()


def test_the_library_says_in_chinese_why_an_upload_or_a_correction_is_refused(page, live_server, tmp_path):
    import httpx

    from tests.conftest import SEEDS

    def documents():
        return httpx.get(f"{live_server}/api/documents").json()["documents"]

    before = documents()
    page.click("#tab-library")
    page.wait_for_selector("#library-table tbody tr")

    def upload(*files):
        page.evaluate("document.querySelector('#upload-jobs').replaceChildren()")
        page.set_input_files("#upload-input", [str(f) for f in files])
        page.wait_for_selector("#upload-jobs .job.failed, #upload-jobs .job.done", timeout=JOB_WAIT_MS)
        return page.locator("#upload-jobs .job").first

    program = tmp_path / "安装程序.exe"
    program.write_bytes(b"MZ\x90\x00" * 100)
    job = upload(program)
    assert "没有一个文件能读成政策文件" in job.locator(".job-state").inner_text()
    assert "安装程序.exe，不支持的文件类型" in job.locator(".job-outcome").inner_text()

    copy = tmp_path / "班额通知副本.txt"
    copy.write_bytes(SEEDS["002"].read_bytes())
    blank = tmp_path / "空白.txt"
    blank.write_text("\n\n   \n", encoding="utf-8")
    outcome = upload(copy, blank).locator(".job-outcome").inner_text()
    assert "重复：班额通知副本.txt，与文件库中的《关于印发《大力提升义务教育工作质量实施意见》的通知》内容相同" in outcome
    assert "未加入：空白.txt" in outcome

    many = []
    for n in range(60):
        many.append(tmp_path / f"通知{n:02d}.txt")
        many[-1].write_text(f"关于第{n}号事项的通知\n\n一、请各校做好准备。", encoding="utf-8")
    assert "一次最多上传 50 个文件，这次选了 60 个" in upload(*many).locator(".job-state").inner_text()

    huge = tmp_path / "二十兆.txt"
    huge.write_bytes("义务教育。".encode() * 1_400_000)
    assert "“二十兆.txt”超过单个文件的上限（10 MB）" in upload(huge).locator(".job-state").inner_text()

    # Corrections the form's own checks would stop are lifted here so that the server's answer shows.
    page.locator("#library-table tbody tr", has_text="大力提升义务教育工作质量").locator("button.edit").click()
    page.evaluate("for (const input of document.querySelectorAll('#metadata-form input')) "
                  "{ input.removeAttribute('required'); input.removeAttribute('maxlength'); }")
    for field, value, message in (("title", "", "标题不能为空"), ("issuer", "局" * 10_000, "发文机关太长"),
                                  ("date", "2017年4月", "日期格式应为 YYYY、YYYY-MM 或 YYYY-MM-DD")):
        page.fill(f"#metadata-form input[name={field}]", value)
        page.evaluate("document.querySelector('#metadata-status').textContent = ''")
        page.click("#metadata-form button[type=submit]")
        page.wait_for_function("() => document.querySelector('#metadata-status').textContent.startsWith('保存失败')")
        assert message in page.locator("#metadata-status").inner_text()
        page.click("#metadata-cancel")
        page.locator("#library-table tbody tr", has_text="大力提升义务教育工作质量").locator("button.edit").click()
    page.click("#metadata-cancel")
    assert documents() == before  # the index is unchanged


def test_removing_a_document_a_running_upload_replaces_says_why_in_the_page(page, gated_server):
    import httpx

    from tests.conftest import HANG_S, LAWS, follow_job

    url, gated = gated_server
    laws = sorted((LAWS / "education").glob("*.txt"))
    gated.gate.set()
    first = httpx.post(f"{url}/api/documents", files={"files": ("通知.txt", laws[0].read_bytes())}, timeout=HANG_S)
    doc_id = follow_job(url, first.json())["result"]["documents"][0]["doc_id"]
    gated.gate.clear()
    gated.entered.clear()
    replacing = httpx.post(f"{url}/api/documents", files={"files": ("通知.txt", laws[1].read_bytes())}).json()
    assert gated.entered.wait(HANG_S)  # the upload that replaces 通知.txt is running, held in its embedding

    context = browser_context(page.context.browser)
    staff = context.new_page()
    staff.goto(url + "/")
    staff.click("#tab-library")
    staff.wait_for_selector(f"#library-table tbody tr[data-doc-id='{doc_id}']")
    staff.once("dialog", lambda confirm: confirm.accept())
    staff.locator(f"#library-table tbody tr[data-doc-id='{doc_id}'] button.remove").click()
    staff.wait_for_function("() => document.querySelector('#library-count').textContent.startsWith('删除失败')")
    assert "正被一个尚未完成的写入任务替换" in staff.locator("#library-count").inner_text()
    context.close()
    gated.gate.set()
    assert follow_job(url, replacing)["state"] == "done"
    assert doc_id in {d["doc_id"] for d in httpx.get(f"{url}/api/documents").json()["documents"]}
