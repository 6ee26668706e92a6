"""Issue #11 part 2 in a real browser (Debian's chromium through Playwright) against a real server.

A page on a second loopback port (another origin, the same site) tries the writes the issue reported;
the server refuses them and the index stays as it was, while the app's own page still uploads.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.conftest import HANG_S
from tests.test_security import CLASS_SIZE_DOC, NEW_DOC, NEW_NAME, NEW_TITLE
from tests.test_web_page import CHROMIUM, CHROMIUM_ARGS, browser_context

# The attacks of the issue, run by the attacker's page; each reports what the page could see.
ATTACK = """async ({target, name, text, docId}) => {
  const attempt = (url, init) => fetch(url, init).then(response => response.type, error => error.name);
  const form = new FormData();
  form.append("files", new File([text], name, {type: "text/plain"}));
  return {
    upload: await attempt(target + "/api/documents", {method: "POST", body: form, mode: "no-cors"}),
    deleteCors: await attempt(target + "/api/documents/" + docId, {method: "DELETE"}),
    deleteNoCors: await attempt(target + "/api/documents/" + docId, {method: "DELETE", mode: "no-cors"}),
  };
}"""

# The classic form post, its file set by script; the browser navigates to the server's answer.
FORM_POST = """({target, name, text}) => {
  const form = document.createElement("form");
  form.method = "post";
  form.enctype = "multipart/form-data";
  form.action = target + "/api/documents";
  const input = document.createElement("input");
  input.type = "file";
  input.name = "files";
  const files = new DataTransfer();
  files.items.add(new File([text], name, {type: "text/plain"}));
  input.files = files.files;
  form.append(input);
  document.body.append(form);
  form.submit();
}"""

OWN_PAGE_UPLOAD = """async ({name, text}) => {
  const form = new FormData();
  form.append("files", new File([text], name, {type: "text/plain"}));
  const response = await fetch("/api/documents?wait=true", {method: "POST", body: form});
  return {status: response.status, body: await response.json()};
}"""

OWN_PAGE_DELETE = """async (docId) => (await fetch("/api/documents/" + docId, {method: "DELETE"})).status"""


class _AttackerPage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = "<!doctype html><html><head><title>another site</title></head><body></body></html>".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture(scope="module")
def attacker_site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _AttackerPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    thread.join(timeout=HANG_S)


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        pytest.fail("Debian's chromium is missing: `make browser` (as root) or `apt-get install chromium`")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture()
def new_doc_text() -> str:
    if not NEW_DOC.is_file():
        pytest.skip(f"laws corpus not found at {NEW_DOC}")
    return NEW_DOC.read_text(encoding="utf-8")


def _titles(server: str) -> dict[str, str]:
    return {d["doc_id"]: d["title"] for d in httpx.get(server + "/api/documents", timeout=HANG_S).json()["documents"]}


def test_a_page_on_another_port_cannot_upload_or_delete(browser, live_server, attacker_site, new_doc_text):
    before = _titles(live_server)
    assert CLASS_SIZE_DOC in before and NEW_TITLE not in before.values()
    page = browser_context(browser).new_page()
    failed: list[tuple[str, str, str]] = []
    page.on("requestfailed", lambda r: failed.append((r.method, r.url, r.failure or "")))
    page.goto(attacker_site + "/")
    args = {"target": live_server, "name": NEW_NAME, "text": new_doc_text, "docId": CLASS_SIZE_DOC}
    seen = page.evaluate(ATTACK, args)
    assert _titles(live_server) == before
    # The server answered the upload (403) and its Cross-Origin-Resource-Policy kept even that from the
    # page; a DELETE cannot be sent in no-cors mode, and in cors mode its preflight fails (no CORS here).
    assert seen == {"upload": "TypeError", "deleteCors": "TypeError", "deleteNoCors": "TypeError"}
    assert ("POST", live_server + "/api/documents", "net::ERR_BLOCKED_BY_RESPONSE.NotSameOrigin") in failed

    page.evaluate(FORM_POST, args)
    page.wait_for_url(live_server + "/api/documents")
    assert '"error":"cross_site"' in page.content()
    page.close()
    assert _titles(live_server) == before


def test_the_apps_own_page_still_uploads_and_deletes_under_its_csp(browser, live_server, new_doc_text):
    page = browser_context(browser).new_page()
    # Reported by the browser for anything the Content-Security-Policy blocks (inline script or style).
    page.add_init_script("window.cspViolations = []; document.addEventListener('securitypolicyviolation',"
                         " e => window.cspViolations.push(e.violatedDirective));")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(live_server + "/")
    page.wait_for_function("() => document.querySelector('#stats').textContent.includes('份文件')")

    uploaded = page.evaluate(OWN_PAGE_UPLOAD, {"name": NEW_NAME, "text": new_doc_text})
    assert uploaded["status"] == 200, uploaded
    [doc] = uploaded["body"]["documents"]
    try:
        assert _titles(live_server)[doc["doc_id"]] == NEW_TITLE
        page.fill("#q", "美育改革发展备忘录")
        page.click("#search-form button[type=submit]")
        page.wait_for_selector("#results .result")
        assert page.locator("#results .doc-title").first.inner_text() == NEW_TITLE
    finally:
        status = page.evaluate(OWN_PAGE_DELETE, doc["doc_id"])
    assert status == 200 and doc["doc_id"] not in _titles(live_server)
    assert page.evaluate("window.cspViolations") == [] and not errors
    page.close()
