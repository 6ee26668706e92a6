"""Limits on what the server reads, and the HTTP details around them (issue #11 parts 4 and 5).

A real uvicorn server with an API key, spoken to over raw sockets, shows what happens before a
body is read: a write without the key is answered 401 and a body over its limit 413 while the
client is still sending, and the server's memory stays flat. The in-process app shows the rest:
a cut-off multipart upload, a file that would make too many clauses, OPTIONS and 405s that list
every method of a path, no trailing-slash redirects, and /docs that needs no CDN.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api.app import create_app
from ingest.clauses import build_clauses
from tests.conftest import HANG_S, LAWS, REPO, SEEDS, serving

KEY = "s3cret"
MB = 1024 * 1024
DOC_ID = "002_d6057a83cdbdb456"


@pytest.fixture(scope="module")
def keyed_app(tmp_path_factory, demo_index_dir, encoder):
    from policyqa.settings import Settings

    root = tmp_path_factory.mktemp("limits")
    shutil.copytree(demo_index_dir, root / "index")
    settings = Settings(index_dir=root / "index", upload_dir=root / "uploads", models_dir=REPO / "data" / "models",
                        api_key=KEY)
    return create_app(settings, encoder)


@pytest.fixture(scope="module")
def server_port(keyed_app) -> Iterator[int]:
    with serving(keyed_app) as address:
        yield int(address.rsplit(":", 1)[1])


def rss_bytes() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"VmRSS:\s+(\d+) kB", status).group(1)) * 1024


def send_and_read(port: int, head: bytes, chunks: Iterator[bytes]) -> tuple[int, dict, dict, int]:
    """Send a request head, then body chunks until an answer arrives; (status, headers, JSON body, body bytes sent).

    The answer is read while sending, as a client that streams a large body would.
    """
    sock = socket.create_connection(("127.0.0.1", port), timeout=HANG_S)
    answer = bytearray()
    answered = threading.Event()

    def read() -> None:
        """Until the whole answer is in (or the server closes): its length is in its head, or it is chunked."""
        while not _whole_response(bytes(answer)):
            try:
                data = sock.recv(65536)
            except OSError:
                break
            if not data:
                break
            answer.extend(data)
        answered.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    sock.sendall(head)
    sent = 0
    for chunk in chunks:
        if answered.is_set():
            break
        try:
            sock.sendall(chunk)
        except OSError:  # the server closed the connection: it will read no more
            break
        sent += len(chunk)
    assert answered.wait(HANG_S), "no answer from the server"
    reader.join(timeout=HANG_S)
    sock.close()
    head_text, _, body = bytes(answer).partition(b"\r\n\r\n")
    status_line, *header_lines = head_text.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in header_lines)}
    if headers.get("transfer-encoding") == "chunked":
        body = body.split(b"\r\n", 1)[1].rsplit(b"\r\n0\r\n", 1)[0]
    return int(status_line.split()[1]), headers, json.loads(body), sent


def _whole_response(answer: bytes) -> bool:
    head, found, body = answer.partition(b"\r\n\r\n")
    if not found:
        return False
    length = re.search(rb"(?im)^content-length:\s*(\d+)", head)
    return len(body) >= int(length.group(1)) if length else body.endswith(b"0\r\n\r\n")


def request_head(port: int, method: str, path: str, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", *(f"{k}: {v}" for k, v in headers.items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def filler(total: int, size: int = 256 * 1024) -> Iterator[bytes]:
    chunk = b" " * size
    for _ in range(total // size):
        yield chunk


def chunked(pieces: Iterator[bytes]) -> Iterator[bytes]:
    """HTTP/1.1 chunked transfer coding: no Content-Length, the server learns the size only by reading."""
    for piece in pieces:
        yield b"%x\r\n%s\r\n" % (len(piece), piece)
    yield b"0\r\n\r\n"


# --- before the body is read -----------------------------------------------------------------


def test_a_declared_200_mb_chat_body_is_refused_before_it_is_sent(server_port):
    head = request_head(server_port, "POST", "/v1/chat/completions",
                        {"Content-Type": "application/json", "Content-Length": str(200 * MB)})
    status, headers, body, sent = send_and_read(server_port, head, filler(200 * MB))
    assert status == 413 and headers["connection"] == "close"
    assert body["error"]["code"] == "request_too_large" and "POLICYQA_MAX_JSON_BYTES" in body["error"]["message"]
    assert sent < 16 * MB


def test_a_chunked_chat_body_is_cut_off_once_it_passes_the_limit_and_memory_stays_flat(server_port):
    before = rss_bytes()
    head = request_head(server_port, "POST", "/v1/chat/completions",
                        {"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    status, _, body, sent = send_and_read(server_port, head, chunked(filler(200 * MB)))
    assert status == 413 and body["error"]["code"] == "request_too_large"
    # The server stopped reading just past its 1 MiB limit, not after 200 MB.
    assert sent < 32 * MB
    assert rss_bytes() - before < 64 * MB


def test_an_upload_without_the_key_gets_401_before_its_body_is_sent(server_port, keyed_app):
    documents = len(keyed_app.state.live.index.documents)
    head = request_head(server_port, "POST", "/api/documents", {
        "Content-Type": "multipart/form-data; boundary=XyZ", "Content-Length": str(200 * MB)})
    status, headers, body, sent = send_and_read(server_port, head, filler(200 * MB))
    assert status == 401 and body["error"] == "unauthorized" and "X-API-Key" in body["message"]
    assert headers["connection"] == "close" and sent < 16 * MB
    assert len(keyed_app.state.live.index.documents) == documents


def test_an_upload_declared_over_the_request_limit_gets_413_before_its_body_is_sent(server_port):
    head = request_head(server_port, "POST", "/api/documents", {
        "Content-Type": "multipart/form-data; boundary=XyZ", "Content-Length": str(200 * MB), "X-API-Key": KEY})
    status, _, body, sent = send_and_read(server_port, head, filler(200 * MB))
    assert status == 413 and body["error"] == "request_too_large"
    assert "67,108,864 bytes (POLICYQA_MAX_REQUEST_BYTES)" in body["message"] and sent < 16 * MB


def test_a_delete_without_the_key_is_refused_and_changes_nothing(server_port, keyed_app):
    head = request_head(server_port, "DELETE", f"/api/documents/{DOC_ID}", {})
    status, _, body, _ = send_and_read(server_port, head, iter(()))
    assert status == 401 and body["error"] == "unauthorized"
    assert DOC_ID in keyed_app.state.live.index.documents


# --- while the body is read (in-process app) -----------------------------------------------


@pytest.fixture()
def small_limits_client(tmp_path, demo_index_dir, encoder):
    """An app with an API key and small body limits, over its own index copy."""
    from policyqa.settings import Settings

    shutil.copytree(demo_index_dir, tmp_path / "index")
    settings = Settings(index_dir=tmp_path / "index", upload_dir=tmp_path / "uploads", api_key=KEY,
                        max_request_bytes=200_000, max_json_bytes=10_000)
    with TestClient(create_app(settings, encoder), headers={"X-API-Key": KEY}) as client:
        yield client


def multipart(files: list[tuple[str, bytes]], boundary: str = "policyqa-test") -> tuple[bytes, str]:
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
             f"Content-Type: text/plain\r\n\r\n".encode() + content + b"\r\n" for name, content in files]
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_a_cut_off_upload_is_a_400_and_adds_nothing(small_limits_client):
    """Two files, the second cut mid-text: Starlette would have kept the first and dropped the rest."""
    if not LAWS.is_dir():
        pytest.skip(f"laws corpus not found at {LAWS}")
    laws = sorted((LAWS / "education").glob("*.txt"), key=lambda p: p.stat().st_size)[:2]  # quick to embed
    before = small_limits_client.get("/api/stats").json()["documents"]
    body, content_type = multipart([(f"{n}.txt", law.read_bytes()) for n, law in zip("甲乙", laws)])
    assert len(body) < 200_000
    response = small_limits_client.post("/api/documents?wait=true", content=body[: len(body) - 2000],
                                        headers={"Content-Type": content_type})
    assert response.status_code == 400 and response.json()["error"] == "truncated_body"
    assert "closing boundary" in response.json()["message"]
    assert small_limits_client.get("/api/stats").json()["documents"] == before
    whole = small_limits_client.post("/api/documents?wait=true", content=body, headers={"Content-Type": content_type})
    assert whole.status_code == 200 and len(whole.json()["documents"]) == 2


def test_bodies_without_a_length_are_counted_as_they_are_read(small_limits_client):
    body, content_type = multipart([("大.txt", SEEDS["003"].read_bytes() * 8)])
    assert len(body) > 200_000
    upload = small_limits_client.post("/api/documents?wait=true", content=iter([body]), headers={"Content-Type": content_type})
    assert upload.status_code == 413 and upload.json()["error"] == "request_too_large"
    chat = {"messages": [{"role": "user", "content": "班额标准"}] * 200}
    response = small_limits_client.post("/v1/chat/completions", content=iter([json.dumps(chat).encode()]),
                                        headers={"Content-Type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"


# --- what one file may become --------------------------------------------------------------


def _one_line_law(megabytes: int) -> bytes:
    """A real law with its line breaks removed, repeated: the shape of a text dump."""
    if not LAWS.is_dir():
        pytest.skip(f"laws corpus not found at {LAWS}")
    law = sorted((LAWS / "education").glob("*.txt"))[3].read_text(encoding="utf-8").replace("\n", "")
    text = law * (megabytes * MB // len(law.encode()) + 1)
    return text.encode()[: megabytes * MB].decode(errors="ignore").encode()


def test_a_file_that_would_make_too_many_clauses_is_refused_with_its_reason(small_limits_client, tmp_path):
    from ingest.pipeline import find_files, ingest_files

    path = tmp_path / "dump.txt"
    path.write_bytes(_one_line_law(6))
    result = ingest_files(list(find_files([path])))  # how long it takes: bench/parse_speed.py --worst-cases
    assert result.clauses == [] and len(result.skipped) == 1
    assert result.skipped[0].reason.startswith("produced more than 5,000 clauses")


def test_one_long_section_cut_into_nine_thousand_clauses_numbers_each_once():
    """9,000 parts of one section (their numbering was quadratic once: bench/parse_speed.py --worst-cases times it)."""
    clauses = build_clauses("dump", "dump", [_one_line_law(3).decode() * 4])
    assert len(clauses) > 9000
    assert [c.id for c in clauses[:3]] == ["dump#preamble", "dump#preamble~2", "dump#preamble~3"]
    assert len({c.id for c in clauses}) == len(clauses)


# --- methods, paths and the docs page ------------------------------------------------------


def test_options_and_405s_list_every_method_of_the_path(api_client):
    options = api_client.options(f"/api/documents/{DOC_ID}")
    assert options.status_code == 204 and options.headers["allow"] == "GET, PATCH, DELETE, OPTIONS"
    put = api_client.put(f"/api/documents/{DOC_ID}")
    assert put.status_code == 405 and put.headers["allow"] == "GET, PATCH, DELETE, OPTIONS"
    assert put.json()["error"] == "method_not_allowed" and "takes GET, PATCH, DELETE, OPTIONS" in put.json()["message"]
    assert api_client.options("/api/documents").headers["allow"] == "GET, POST, OPTIONS"
    models = api_client.post("/v1/models")
    assert models.status_code == 405 and models.json()["error"]["code"] == "method_not_allowed"


def test_a_trailing_slash_is_a_clear_404_not_a_redirect(api_client):
    response = api_client.delete("/api/documents/")
    assert response.status_code == 404 and not response.history
    assert response.json()["error"] == "not_found"
    assert "paths end without a slash (/api/documents takes GET, POST, OPTIONS)" in response.json()["message"]
    assert api_client.get("/api/documents/").status_code == 404


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_the_api_docs_load_nothing_from_outside_the_server(api_client, page):
    html = api_client.get(page).text
    urls = re.findall(r"""(?:src|href)=["']([^"']+)""", html) + re.findall(r"""url:\s*['"]([^'"]+)""", html)
    assert urls and not [u for u in urls if not u.startswith("/")], urls
    for url in urls:
        assert api_client.get(url).status_code == 200, url
    assert "https://" not in html
