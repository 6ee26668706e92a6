// The staff page: search, clause context, document view and cited chat over the policyqa API.
// Every piece of document text goes into the page through textContent, never innerHTML.
"use strict";

const $ = (selector) => document.querySelector(selector);
const MODE_NAMES = { hybrid: "混合", dense: "语义", lexical: "关键词" };

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined && text !== null) node.textContent = text;
  return node;
}

// The server's own words for an error: `{"error": code, "message": …}` under /api,
// OpenAI's `{"error": {"message": …}}` under /v1.
function errorMessage(body, status) {
  const message = body && (body.message || (body.error && body.error.message));
  return message || `服务器返回 ${status}`;
}

// An Error carrying the server's message, its error code (`no_index`, …) and its detail (refused files, …).
function serverError(body, status) {
  const error = new Error(errorMessage(body, status));
  error.status = status;
  error.code = body && typeof body.error === "string" ? body.error : null;
  error.detail = body ? body.detail : null;
  return error;
}

async function getJSON(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => null);
  if (!response.ok) throw serverError(body, response.status);
  return body;
}

function documentMeta(doc) {
  return [doc.issuer, doc.doc_number, doc.date].filter(Boolean).join(" · ");
}

// The clause text with the highlight spans (character offsets) wrapped in <mark>.
function highlighted(text, highlights) {
  const fragment = document.createDocumentFragment();
  let at = 0;
  for (const span of highlights || []) {
    if (span.start < at) continue;
    fragment.append(text.slice(at, span.start));
    fragment.append(el("mark", null, text.slice(span.start, span.end)));
    at = span.end;
  }
  fragment.append(text.slice(at));
  return fragment;
}

function breadcrumb(list, path) {
  list.replaceChildren(...path.map((heading) => el("li", null, heading)));
}

function formatScore(value, digits) {
  return value === null || value === undefined ? "—" : value.toFixed(digits);
}

/* ---------- search ---------- */

function searchParams() {
  const form = $("#search-form");
  const params = new URLSearchParams({ q: $("#q").value.trim(), k: $("#k").value, mode: form.mode.value });
  if ($("#filter-doc").value) params.set("doc", $("#filter-doc").value);
  if ($("#filter-issuer").value.trim()) params.set("issuer", $("#filter-issuer").value.trim());
  if ($("#filter-year").value) params.set("year", $("#filter-year").value);
  if (!$("#rerank").checked) params.set("rerank", "false");
  return params;
}

// A search answered after a later one started is dropped: its results would replace the newer ones.
let latestSearch = 0;

async function runSearch() {
  const run = ++latestSearch;
  const params = searchParams();
  const status = $("#search-status");
  const results = $("#results");
  if (!params.get("q")) {
    status.textContent = "请输入问题或关键词。";
    results.replaceChildren();
    return;
  }
  status.textContent = "检索中…";
  status.classList.remove("error");
  try {
    const body = await getJSON(`/api/search?${params}`);
    if (run !== latestSearch) return;
    results.replaceChildren(...body.results.map(renderResult));
    status.textContent = body.results.length
      ? `${MODE_NAMES[body.mode]}检索：${body.results.length} 条结果，用时 ${Math.round(body.took_ms)} 毫秒`
      : "没有找到匹配的条款。可以换个说法，或放宽筛选条件。";
    history.replaceState(null, "", `?${params}`);
  } catch (error) {
    if (run !== latestSearch) return;
    results.replaceChildren();
    status.textContent = `检索失败：${error.message}`;
    status.classList.add("error");
  }
}

function renderResult(result) {
  const item = $("#result-template").content.firstElementChild.cloneNode(true);
  item.dataset.clauseId = result.clause_id;
  item.querySelector(".rank").textContent = result.rank;
  const title = item.querySelector(".doc-title");
  title.textContent = result.document.title;
  title.addEventListener("click", (event) => {
    event.preventDefault();
    openDocument(result.document.doc_id, result.clause_id);
  });
  item.querySelector(".address").textContent = result.address;
  item.querySelector(".meta").textContent = documentMeta(result.document);
  breadcrumb(item.querySelector(".breadcrumb"), result.heading_path);
  item.querySelector(".clause-text").append(highlighted(result.text, result.highlights));
  if (result.also_in.length) {
    const also = item.querySelector(".also-in");
    also.hidden = false;
    also.textContent = `同一条款也见于：${result.also_in.map((a) => a.title).join("；")}`;
  }
  item.querySelector(".scores").textContent =
    (result.scores.rerank == null ? "" : `相关度 ${result.scores.rerank.toFixed(3)} · `) +
    `融合得分 ${result.score.toFixed(3)}（语义 ${formatScore(result.scores.dense, 3)}，关键词 ${formatScore(result.scores.lexical, 2)}）`;
  item.querySelector(".expand-context").addEventListener("click", (event) =>
    toggleContext(item, result.clause_id, event.currentTarget));
  item.querySelector(".open-document").addEventListener("click", () =>
    openDocument(result.document.doc_id, result.clause_id));
  return item;
}

async function toggleContext(item, clauseId, button) {
  const box = item.querySelector(".context");
  if (!box.hidden) {
    box.hidden = true;
    button.textContent = "展开上下文";
    return;
  }
  try {
    const body = await getJSON(`/api/clauses/${encodeURIComponent(clauseId)}?context=2`);
    const rows = [...body.previous, body.clause, ...body.next].map((clause) => {
      const row = el("div", clause.clause_id === clauseId ? "context-clause current" : "context-clause");
      row.append(el("span", "address", clause.address), el("span", null, clause.text));
      return row;
    });
    box.replaceChildren(...rows);
    box.hidden = false;
    button.textContent = "收起上下文";
  } catch (error) {
    box.replaceChildren(el("p", "error", `无法读取上下文：${error.message}`));
    box.hidden = false;
  }
}

/* ---------- document view ---------- */

async function openDocument(docId, clauseId) {
  const viewer = $("#viewer");
  const bodyBox = $("#viewer-body");
  $("#viewer-title").textContent = "读取中…";
  $("#viewer-meta").textContent = "";
  bodyBox.replaceChildren();
  viewer.hidden = false;
  try {
    const doc = await getJSON(`/api/documents/${encodeURIComponent(docId)}`);
    $("#viewer-title").textContent = doc.title;
    $("#viewer-meta").textContent = [documentMeta(doc), `${doc.clauses} 个条款`].filter(Boolean).join(" · ");
    // The full text, cut at the clause boundaries so that the clause asked for can be marked.
    let at = 0;
    let marked = null;
    for (const span of doc.clause_spans) {
      if (span.char_start > at) bodyBox.append(doc.text.slice(at, span.char_start));
      const part = el("span", "doc-clause", doc.text.slice(span.char_start, span.char_end));
      part.dataset.clauseId = span.clause_id;
      part.title = span.address;
      if (span.clause_id === clauseId) {
        part.classList.add("current");
        marked = part;
      }
      bodyBox.append(part);
      at = Math.max(at, span.char_end);
    }
    bodyBox.append(doc.text.slice(at));
    if (marked) marked.scrollIntoView({ block: "center" });
  } catch (error) {
    $("#viewer-title").textContent = "无法打开文件";
    bodyBox.replaceChildren(el("p", "error", error.message));
  }
}

function searchWithin(docId) {
  showPanel($("#tab-search"));
  $("#filter-doc").value = docId;
  const title = $("#filter-doc").selectedOptions[0];
  $("#search-status").textContent = $("#filter-doc").value ? `在《${title.textContent}》中检索：输入关键词。` : "";
  $("#results").replaceChildren();
  $("#q").focus();
}

function closeViewer() {
  $("#viewer").hidden = true;
}

/* ---------- chat ---------- */

let conversation = [];

function renderAnswer(content, sources) {
  const box = el("div", "message assistant");
  const text = el("div", "answer-text");
  // Citations [n] become buttons that open the cited clause in its document.
  const bySource = new Map(sources.map((s) => [s.number, s]));
  const answerPart = content.split(/\n来源[:：]?\n/)[0];
  for (const piece of answerPart.split(/(\[\d+\])/)) {
    const match = piece.match(/^\[(\d+)\]$/);
    const source = match && bySource.get(Number(match[1]));
    if (source) {
      const cite = el("button", "citation", piece);
      cite.type = "button";
      cite.title = `${source.title} ${source.address}`;
      cite.addEventListener("click", () => openDocument(source.doc_id, source.clause_id));
      text.append(cite);
    } else {
      text.append(piece);
    }
  }
  box.append(text);
  if (sources.length) {
    const list = el("ol", "sources");
    for (const source of sources) {
      const item = el("li");
      item.value = source.number;
      const link = el("a", "source-link", `${source.title} ${source.address}`);
      link.href = "#";
      link.addEventListener("click", (event) => {
        event.preventDefault();
        openDocument(source.doc_id, source.clause_id);
      });
      item.append(link, el("span", "clause-id", source.clause_id));
      list.append(item);
    }
    box.append(el("p", "sources-title", "来源"), list);
  }
  return box;
}

async function sendChat(question) {
  const log = $("#conversation");
  log.append(el("div", "message user", question));
  const pending = el("div", "message assistant pending", "正在查找相关条款…");
  log.append(pending);
  conversation.push({ role: "user", content: question });
  try {
    const body = await getJSON("/v1/chat/completions", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ model: "policyqa", messages: conversation }),
    });
    const content = body.choices[0].message.content;
    conversation.push({ role: "assistant", content });
    pending.replaceWith(renderAnswer(content, body.sources || []));
  } catch (error) {
    conversation.pop();
    pending.replaceWith(el("div", "message assistant error", `问答失败：${error.message}`));
  }
  log.lastElementChild.scrollIntoView({ block: "nearest" });
}

/* ---------- wiring ---------- */

function showPanel(tab) {
  for (const other of document.querySelectorAll(".tab")) {
    const active = other === tab;
    other.classList.toggle("active", active);
    other.setAttribute("aria-selected", String(active));
    $(`#${other.dataset.panel}`).hidden = !active;
  }
}

// The documents as the header's counts and the search's 文件 filter show them (the library changes both).
function showDocuments(documents) {
  const clauses = documents.reduce((sum, d) => sum + d.clauses, 0);
  $("#stats").textContent = `${documents.length} 份文件 · ${clauses} 个条款`;
  const select = $("#filter-doc");
  const chosen = select.value;
  const options = [...documents].sort((a, b) => a.title.localeCompare(b.title, "zh")).map((doc) => {
    const option = el("option", null, doc.title);
    option.value = doc.doc_id;
    return option;
  });
  select.replaceChildren(select.options[0], ...options);
  select.value = documents.some((d) => d.doc_id === chosen) ? chosen : "";
}

// Every document, or none while the server has no index yet (an empty library, not a failure).
async function fetchDocuments() {
  try {
    return (await getJSON("/api/documents")).documents;
  } catch (error) {
    if (error.code === "no_index") return [];
    throw error;
  }
}

async function loadFilters() {
  try {
    showDocuments(await fetchDocuments());
  } catch (error) {
    $("#stats").textContent = `索引不可用：${error.message}`;
  }
}

// A search link (`?q=…&doc=…`) runs its search; `?doc=ID` alone (a document page's 在本文件中检索)
// opens the search with that document chosen.
function restoreFromUrl() {
  const params = new URLSearchParams(location.search);
  if (!params.get("q")) {
    if (params.get("doc")) searchWithin(params.get("doc"));
    return false;
  }
  $("#q").value = params.get("q");
  for (const [name, selector] of [["k", "#k"], ["doc", "#filter-doc"], ["issuer", "#filter-issuer"], ["year", "#filter-year"]]) {
    if (params.get(name)) $(selector).value = params.get(name);
  }
  const mode = document.querySelector(`input[name=mode][value="${params.get("mode")}"]`);
  if (mode) mode.checked = true;
  $("#rerank").checked = params.get("rerank") !== "false";
  return true;
}

document.addEventListener("DOMContentLoaded", async () => {
  $("#search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    runSearch();
  });
  for (const control of document.querySelectorAll("input[name=mode], #filter-doc, #k, #rerank")) {
    control.addEventListener("change", () => $("#q").value.trim() && runSearch());
  }
  for (const tab of document.querySelectorAll(".tab")) tab.addEventListener("click", () => showPanel(tab));
  $("#chat-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const question = $("#chat-input").value.trim();
    if (!question) return;
    $("#chat-input").value = "";
    sendChat(question);
  });
  $("#chat-reset").addEventListener("click", () => {
    conversation = [];
    $("#conversation").replaceChildren();
  });
  $("#viewer-close").addEventListener("click", closeViewer);
  $("#viewer").addEventListener("click", (event) => event.target === $("#viewer") && closeViewer());
  document.addEventListener("keydown", (event) => event.key === "Escape" && closeViewer());
  if (window.matchMedia("(max-width: 600px)").matches) $("#search-options").open = false;
  await loadFilters();
  if (restoreFromUrl()) runSearch();
});
