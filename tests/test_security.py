"""Issue #11 part 2: what pages on other sites and other host names can do to the server (through TestClient).

The browser's side of the same story (real Origin and Sec-Fetch-Site headers) is tests/test_web_security.py.
"""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from api.security import allowed_hosts
from policyqa.settings import Settings
from tests.conftest import LAWS, REPO

# A real notice that is not in the demo index (a demo seed under a new name would only be a duplicate).
NEW_DOC = LAWS / "education" / "110_教育部办公厅关于签署第一批学校美育改革发展备忘录.txt"
NEW_TITLE = "教育部办公厅关于签署第一批学校美育改革发展备忘录有关事项的通知"
NEW_NAME = "美育备忘录.txt"
CLASS_SIZE_DOC = "002_d6057a83cdbdb456"
SAME_ORIGIN = {"Origin": "http://testserver", "Sec-Fetch-Site": "same-origin"}


def _upload(client, headers: dict[str, str]):
    if not NEW_DOC.is_file():
        pytest.skip(f"laws corpus not found at {NEW_DOC}")
    return client.post("/api/documents?wait=true", files={"files": (NEW_NAME, NEW_DOC.read_bytes())}, headers=headers)


def _titles(client) -> dict[str, str]:
    return {d["doc_id"]: d["title"] for d in client.get("/api/documents").json()["documents"]}


@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:8000", "127.0.0.1.attacker.example"])
def test_a_foreign_host_name_gets_a_400_and_nothing_is_served(api_client, host):
    search = api_client.get("/api/search", params={"q": "班额标准"}, headers={"Host": host})
    assert search.status_code == 400
    assert search.json()["error"] == "bad_host" and "POLICYQA_ALLOWED_HOSTS" in search.json()["message"]
    assert "班额" not in search.text
    page = api_client.get("/", headers={"Host": host})
    assert page.status_code == 400 and "<html" not in page.text.lower()


@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost", "LOCALHOST:9000", "[::1]:8000", "testserver"])
def test_the_loopback_names_are_answered_on_any_port(api_client, host):
    response = api_client.get("/api/stats", headers={"Host": host})
    assert response.status_code == 200 and response.json()["documents"] == 12


def test_the_allow_list_adds_the_bind_address_and_configured_names(monkeypatch):
    monkeypatch.setenv("POLICYQA_ALLOWED_HOSTS", "policy.example.org, Search.Example.org:8443")
    hosts = allowed_hosts(Settings(host="10.0.0.5"))
    assert {"policy.example.org", "search.example.org", "10.0.0.5", "localhost", "127.0.0.1", "::1"} == hosts
    monkeypatch.setenv("POLICYQA_ALLOWED_HOSTS", "*")
    assert allowed_hosts(Settings()) is None


def test_a_star_answers_any_host_name(api_settings, encoder):
    with TestClient(create_app(api_settings.model_copy(update={"allowed_hosts": ["*"]}), encoder)) as client:
        assert client.get("/api/stats", headers={"Host": "policy.internal:8000"}).status_code == 200


@pytest.mark.parametrize("headers", [
    {"Origin": "http://attacker.example"},
    {"Origin": "http://127.0.0.1:9999", "Sec-Fetch-Site": "same-site"},  # a page on another local port
    {"Origin": "null"},  # a sandboxed iframe or a file:// page
    {"Sec-Fetch-Site": "cross-site"},
    {"Origin": "https://testserver"},  # same host, other scheme: another origin
])
def test_a_cross_site_upload_is_refused_and_the_index_is_unchanged(api_client, headers):
    before = _titles(api_client)
    response = _upload(api_client, headers)
    assert response.status_code == 403 and response.json()["error"] == "cross_site"
    assert _titles(api_client) == before and NEW_TITLE not in before.values()


def test_a_cross_site_delete_is_refused_and_the_document_stays(api_client):
    response = api_client.delete(f"/api/documents/{CLASS_SIZE_DOC}",
                                 headers={"Origin": "http://attacker.example", "Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403 and response.json()["error"] == "cross_site"
    assert api_client.get(f"/api/documents/{CLASS_SIZE_DOC}").status_code == 200


def test_a_cross_site_chat_post_is_refused_in_openais_error_shape(api_client):
    response = api_client.post("/v1/chat/completions", json={"messages": [{"role": "user", "content": "班额标准"}]},
                               headers={"Origin": "http://attacker.example"})
    assert response.status_code == 403 and response.json()["error"]["code"] == "cross_site"


def test_the_api_key_does_not_let_a_cross_site_page_write(api_settings, encoder):
    with TestClient(create_app(api_settings.model_copy(update={"api_key": "s3cret"}), encoder)) as client:
        before = _titles(client)
        response = _upload(client, {"X-API-Key": "s3cret", "Origin": "http://attacker.example"})
        assert response.status_code == 403 and _titles(client) == before


@pytest.mark.parametrize("headers", [SAME_ORIGIN, {}], ids=["the app's own page", "curl, no Origin"])
def test_same_origin_and_non_browser_writes_still_work(api_client, headers):
    response = _upload(api_client, headers)
    assert response.status_code == 200, response.text
    [doc] = response.json()["documents"]
    try:
        assert _titles(api_client)[doc["doc_id"]] == NEW_TITLE
        hits = api_client.get("/api/search", params={"q": "美育改革发展备忘录", "k": 1}).json()["results"]
        assert hits[0]["document"]["doc_id"] == doc["doc_id"]
    finally:
        deleted = api_client.delete(f"/api/documents/{doc['doc_id']}", headers=headers)
    assert deleted.status_code == 200 and doc["doc_id"] not in _titles(api_client)


def _csp(response) -> dict[str, str]:
    return dict(d.strip().split(" ", 1) for d in response.headers["content-security-policy"].split(";"))


@pytest.mark.parametrize("path", ["/", "/api/search?q=班额标准", "/static/app.js", "/api/documents/nope"])
def test_security_headers_on_the_page_and_the_api(api_client, path):
    response = api_client.get(path)
    csp = _csp(response)
    assert csp["script-src"] == "'self'" and csp["style-src"] == "'self'" and csp["default-src"] == "'self'"
    assert csp["frame-ancestors"] == "'none'"
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["x-frame-options"] == "DENY"
    assert response.headers["referrer-policy"] == "no-referrer"


def test_rejections_carry_the_headers_and_the_docs_allow_swagger_uis_inline_script(api_client):
    assert _csp(api_client.get("/", headers={"Host": "attacker.example"}))["frame-ancestors"] == "'none'"
    docs = api_client.get("/docs")
    assert docs.status_code == 200
    assert "'unsafe-inline'" in _csp(docs)["script-src"] and _csp(docs)["frame-ancestors"] == "'none'"


def test_the_page_has_no_inline_script_or_style_the_csp_would_block():
    html = (REPO / "api" / "static" / "index.html").read_text(encoding="utf-8")
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert scripts and all("src=" in s for s in scripts)
    assert not re.search(r"<style\b|\sstyle=|\son[a-z]+=", html)
