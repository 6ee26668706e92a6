// The 文件库 tab: the document list (sort, filter, pages), a document's page (its clauses as the parser
// cut them), uploads with a progress bar per job, corrections of metadata, re-parse, removal.
// Uses app.js's helpers ($, el, getJSON, serverError, showDocuments, fetchDocuments, breadcrumb, searchWithin).
// Writes send the API key the user typed once (kept in sessionStorage, never in a URL).
"use strict";

const PAGE_SIZE = 50;
const KEY_STORAGE = "policyqa-key";
const FINISHED = ["done", "failed"];
const STAGES = { queued: "排队中", running: "处理中", parsing: "解析", embedding: "向量化", committing: "写入索引" };
// The fields 修改 corrects, with their names.
const FIELD_NAMES = { title: "标题", issuer: "发文机关", doc_number: "文号", date: "日期", region: "地区" };
const FIELDS = Object.keys(FIELD_NAMES);
// What the list shows after a document's title, and its page among its facts: [name, value of a document].
const COLUMNS = {
  ...Object.fromEntries(FIELDS.slice(1).map((field) => [field, [FIELD_NAMES[field], (doc) => doc[field]]])),
  clauses: ["条款", (doc) => doc.clauses],
  source: ["来源文件", (doc) => doc.source_path.split("/").pop()],
  added: ["入库时间", (doc) => shownWhen(doc.added)],
};
const library = { documents: [], sort: "title", descending: false, page: 0, shown: null };

/* ---------- the server's error codes in the page's words (its own message stays in the tooltip) ---------- */

const FIELD_PROBLEMS = {
  string_too_short: "不能为空", string_too_long: "太长", string_pattern_mismatch: "格式应为 YYYY、YYYY-MM 或 YYYY-MM-DD",
  value_error: "不能含控制字符", extra_forbidden: "不能修改",
};
const PROBLEMS = {
  too_many_files: (d) => `一次最多上传 ${d.limit} 个文件，这次选了 ${d.files} 个；没有加入任何文件，请分批上传。`,
  file_too_large: (d) => `“${d.file}”超过单个文件的上限（${Math.round(d.limit_bytes / 1048576)} MB）；没有加入任何文件。`,
  request_too_large: () => "上传的内容超过服务器的上限；没有加入任何文件。",
  truncated_body: () => "上传没有传完（连接中断）；没有加入任何文件，请重试。",
  no_document: () => "没有一个文件能读成政策文件；文件库没有改变。",
  invalid_request: (d) => (Array.isArray(d) ? d : []).map((e) =>
    `${FIELD_NAMES[e.loc[e.loc.length - 1]] || e.loc.join(".")}${FIELD_PROBLEMS[e.type] || "不合要求"}`).join("；") || "请求不合要求",
  document_busy: () => "这份文件正被一个尚未完成的写入任务替换，请等它完成后再试。",
  source_missing: () => "服务器上已没有这份文件的原始文件，无法重新解析；请重新上传它。",
  not_found: () => "文件库里已没有这份文件（可能刚被删除）；请刷新列表。",
  write_queue_full: () => "等待中的写入任务太多，请稍后再试。",
  cross_site: () => "请求来自其他网站，已被拒绝。",
  interrupted: () => "服务器在这次写入中途停止了三次，不再重试；文件库保持上一次写入完成时的样子。",
  write_failed: () => "服务器内部写入失败；文件库没有改变。",
  index_damaged: () => "索引已损坏，写入已停止：请管理员运行 policyqa index repair。",
};
const SKIPS = {
  unsupported_type: () => "不支持的文件类型（支持 .txt .md .html .docx .pdf .doc 及保存的网页）",
  unreadable: () => "无法读取：文件损坏、加密，或编码无法识别",
  cannot_open: () => "无法打开",
  empty: () => "清理后没有可读的正文",
  no_document_text: () => "页面上没有正文（只有标题、栏目或其他文件的列表）",
  too_many_clauses: () => "切出的条款过多，不像一份政策文件（是数据表，或几份文件的合集？）",
  duplicate: (s) => {
    const same = library.documents.find((d) => d.doc_id === s.duplicate_of);
    return same ? `与文件库中的《${same.title}》内容相同` : "与文件库中已有的文件内容相同";
  },
};

function problem(error) {
  const words = PROBLEMS[error.code];
  return words ? words(error.detail || {}) : error.message;
}

function skippedLine(skipped) {
  const words = SKIPS[skipped.code];
  const line = el("li", skipped.code === "duplicate" ? "duplicate" : "skipped",
    `${skipped.code === "duplicate" ? "重复" : "未加入"}：${skipped.file}，${words ? words(skipped) : skipped.reason}`);
  line.title = skipped.reason;
  return line;
}

/* ---------- writes ---------- */

// The key dialog; resolves with the key typed, or null when the user cancels.
function askForKey(problem) {
  const dialog = $("#key-dialog");
  $("#key-error").hidden = !problem;
  $("#key-error").textContent = problem || "";
  $("#key-input").value = "";
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const key = $("#key-input").value.trim();
      resolve(dialog.returnValue === "ok" && key ? key : null);
    }, { once: true });
  });
}

// Sends a write with the stored key; on 401 asks for the key (again, saying why) until it is right or the
// user gives up.
async function sendWrite(url, options) {
  for (;;) {
    const key = sessionStorage.getItem(KEY_STORAGE);
    const headers = { ...(options.headers || {}), ...(key ? { "X-API-Key": key } : {}) };
    const response = await fetch(url, { ...options, headers });
    if (response.status !== 401) return response;
    sessionStorage.removeItem(KEY_STORAGE);
    const typed = await askForKey(key ? "API 密钥不正确（服务器答复 401 未授权），请重新输入。" : null);
    if (!typed) throw new Error("未输入 API 密钥：这台服务器的上传、修改和删除需要密钥，文件库没有改变。");
    sessionStorage.setItem(KEY_STORAGE, typed);
  }
}

// Follows a job until it ends; `onProgress(job)` on each poll. Returns the job's result or throws its error.
async function followJob(job, onProgress) {
  while (!FINISHED.includes(job.state)) {
    if (onProgress) onProgress(job);
    await new Promise((resolve) => setTimeout(resolve, 500));
    job = await getJSON(job.status_url);
  }
  if (job.state !== "done") throw serverError(job.error, job.state);
  return job.result;
}

// A write: its result, whether the server answered at once or with a job (202) to follow.
async function writeRequest(url, options, onProgress) {
  const response = await sendWrite(url, options);
  const body = await response.json().catch(() => null);
  if (!response.ok) throw serverError(body, response.status);
  return response.status === 202 ? followJob(body, onProgress) : body;
}

function progressText(job) {
  const stage = STAGES[job.stage || job.state] || job.state;
  return job.total ? `${stage} ${job.done || 0}/${job.total}` : stage;
}

/* ---------- the list ---------- */

function shownWhen(iso) {
  if (!iso) return "";
  const at = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${at.getFullYear()}-${pad(at.getMonth() + 1)}-${pad(at.getDate())} ${pad(at.getHours())}:${pad(at.getMinutes())}`;
}

async function loadLibrary() {
  library.documents = await fetchDocuments();
  showDocuments(library.documents);
  renderLibrary();
}

function shownDocuments() {
  const needle = $("#library-filter").value.trim();
  const found = library.documents.filter((d) => !needle || [...FIELDS, "source_path"].some((f) => (d[f] || "").includes(needle)));
  const key = library.sort;
  found.sort((a, b) => {
    const order = key === "clauses" ? a.clauses - b.clauses : String(a[key] || "").localeCompare(String(b[key] || ""), "zh");
    return library.descending ? -order : order;
  });
  return found;
}

function renderLibrary() {
  const found = shownDocuments();
  const pages = Math.max(1, Math.ceil(found.length / PAGE_SIZE));
  library.page = Math.min(library.page, pages - 1);
  const rows = found.slice(library.page * PAGE_SIZE, (library.page + 1) * PAGE_SIZE).map(documentRow);
  $("#library-table tbody").replaceChildren(...rows);
  $("#library-count").textContent = library.documents.length
    ? `${found.length} 份文件` : "文件库还是空的：把政策文件拖到上面，或点“选择文件”。";
  $("#page-info").textContent = `第 ${library.page + 1} / ${pages} 页`;
  $("#page-prev").disabled = library.page === 0;
  $("#page-next").disabled = library.page >= pages - 1;
  for (const header of document.querySelectorAll("#library-table th[data-sort]")) {
    header.setAttribute("aria-sort", header.dataset.sort !== library.sort ? "none" : library.descending ? "descending" : "ascending");
  }
}

function cell(className, label, text) {
  const td = el("td", className, text);
  td.dataset.label = label;  // shown before the value when a phone lays rows out as cards
  return td;
}

function documentRow(doc) {
  const row = el("tr");
  row.dataset.docId = doc.doc_id;
  const title = el("td", "title");
  const link = el("a", null, doc.title);
  link.href = `?document=${encodeURIComponent(doc.doc_id)}`;
  link.addEventListener("click", (event) => { event.preventDefault(); openDocumentPage(doc.doc_id, true); });
  title.append(link);
  row.append(title);
  for (const [field, [name, value]] of Object.entries(COLUMNS)) row.append(cell(field, name, value(doc) ?? ""));
  const actions = el("td", "actions");
  const edit = el("button", "link edit", "修改");
  edit.type = "button";
  edit.addEventListener("click", () => editMetadata(doc));
  const remove = el("button", "link remove", "删除");
  remove.type = "button";
  remove.addEventListener("click", () => removeDocument(doc, (message) => { $("#library-count").textContent = message; }));
  actions.append(edit, remove);
  row.append(actions);
  return row;
}

/* ---------- a document's page ---------- */

function showList(push) {
  library.shown = null;
  $("#document-page").hidden = true;
  $("#library-list").hidden = false;
  $("#metadata-form").hidden = true;
  if (push) history.pushState(null, "", location.pathname);
}

// A document's page: its metadata, and its clauses in order with their addresses and heading paths.
async function openDocumentPage(docId, push) {
  showPanel($("#tab-library"));
  $("#library-list").hidden = true;
  $("#metadata-form").hidden = true;
  const page = $("#document-page");
  page.hidden = false;
  if (push) history.pushState(null, "", `?document=${encodeURIComponent(docId)}`);
  $("#document-title").textContent = "读取中…";
  $("#document-meta").replaceChildren();
  $("#document-clauses").replaceChildren();
  $("#document-status").textContent = "";
  try {
    const doc = await getJSON(`/api/documents/${encodeURIComponent(docId)}`);
    library.shown = doc;
    $("#document-title").textContent = doc.title;
    const facts = [...Object.entries(COLUMNS).filter(([field]) => field !== "clauses").map(([, [name, value]]) => [name, value(doc)]),
      ["文件编号", doc.doc_id]];
    $("#document-meta").replaceChildren(...facts.filter(([, value]) => value).flatMap(([name, value]) => [el("dt", null, name), el("dd", null, value)]));
    $("#document-search").href = `?doc=${encodeURIComponent(doc.doc_id)}`;
    $("#document-clause-count").textContent = `${doc.clause_spans.length} 个条款（按文中顺序）`;
    $("#document-clauses").replaceChildren(...doc.clause_spans.map(clauseItem));
  } catch (error) {
    library.shown = null;
    $("#document-title").textContent = "无法打开文件";
    $("#document-status").textContent = problem(error);
  }
}

function clauseItem(clause) {
  const item = el("li", "clause-item");
  item.dataset.clauseId = clause.clause_id;
  const head = el("div", "clause-head");
  const path = el("ol", "breadcrumb");
  breadcrumb(path, clause.heading_path);
  head.append(el("span", "address", clause.address), path);
  item.append(head, el("p", "clause-text", clause.text));
  return item;
}

async function reparseShown() {
  const doc = library.shown;
  const status = $("#document-status");
  status.textContent = "重新解析中…";
  try {
    const result = await writeRequest(`/api/documents/${encodeURIComponent(doc.doc_id)}/reparse?wait=false`, { method: "POST" },
      (job) => { status.textContent = `重新解析：${progressText(job)}`; });
    await loadLibrary();
    const still = result.documents.find((d) => d.doc_id === doc.doc_id);
    if (still) await openDocumentPage(doc.doc_id, false);
    status.textContent = still
      ? `重新解析完成：${still.clauses} 个条款。` : `重新解析完成：这个文件现在解析为 ${result.documents.map((d) => `《${d.title}》`).join("、")}。`;
  } catch (error) {
    status.textContent = `重新解析失败：${problem(error)}`;
  }
}

/* ---------- metadata, removal ---------- */

function editMetadata(doc) {
  const form = $("#metadata-form");
  form.dataset.docId = doc.doc_id;
  for (const field of FIELDS) form.elements[field].value = doc[field] || "";
  $("#metadata-status").textContent = "";
  form.hidden = false;
  form.scrollIntoView({ block: "nearest" });
  form.elements.title.focus();
}

async function saveMetadata(event) {
  event.preventDefault();
  const form = $("#metadata-form");
  const change = Object.fromEntries(FIELDS.map((field) => [field, form.elements[field].value.trim()]));
  $("#metadata-status").textContent = "保存中…";
  try {
    await writeRequest(`/api/documents/${encodeURIComponent(form.dataset.docId)}`, {
      method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify(change),
    }, (job) => { $("#metadata-status").textContent = `保存中：${progressText(job)}`; });
    form.hidden = true;
    await loadLibrary();
    if (library.shown && library.shown.doc_id === form.dataset.docId) await openDocumentPage(form.dataset.docId, false);
  } catch (error) {
    $("#metadata-status").textContent = `保存失败：${problem(error)}`;
  }
}

async function removeDocument(doc, report) {
  if (!window.confirm(`确定从索引中删除《${doc.title}》？删除后检索和问答不再引用它。`)) return false;
  try {
    await writeRequest(`/api/documents/${encodeURIComponent(doc.doc_id)}`, { method: "DELETE" });
    await loadLibrary();
    return true;
  } catch (error) {
    report(`删除失败：${problem(error)}`);
    return false;
  }
}

/* ---------- uploads ---------- */

// One upload request = one job: a line with its files, a progress bar and, once done, what became of each file.
async function upload(files) {
  if (!files.length) return;
  const line = el("li", "job");
  const bar = el("progress");
  const state = el("span", "job-state", "上传中…");
  const outcome = el("ul", "job-outcome");
  line.append(el("span", "job-files", Array.from(files, (f) => f.name).join("、")), bar, state, outcome);
  $("#upload-jobs").prepend(line);
  const form = new FormData();
  for (const file of files) form.append("files", file);
  try {
    const result = await writeRequest("/api/documents", { method: "POST", body: form }, (job) => {
      state.textContent = progressText(job);
      if (job.total) { bar.max = job.total; bar.value = job.done || 0; }
    });
    bar.max = 1;
    bar.value = 1;
    state.textContent = "完成";
    line.classList.add("done");
    outcome.replaceChildren(
      ...result.documents.map((d) => el("li", "added", `已加入：${d.title}（${d.clauses} 个条款）`)),
      ...result.duplicates.map(skippedLine),
      ...result.skipped.map(skippedLine),
    );
    await loadLibrary();
  } catch (error) {
    bar.value = 0;
    line.classList.add("failed");
    state.textContent = `失败：${problem(error)}`;
    state.title = error.message;
    outcome.replaceChildren(...(Array.isArray(error.detail) ? error.detail : []).filter((d) => d.code).map(skippedLine));
  }
}

// The server's limits in the hint and the file picker (they are settings, not constants of the page).
async function showLimits() {
  const limits = await getJSON("/api/limits");
  const mb = Math.round(limits.max_file_bytes / 1048576);
  $("#upload-hint").textContent = `可一次上传多个文件（最多 ${limits.max_files_per_upload} 个，每个不超过 ${mb} MB；` +
    `${limits.file_types.join(" ")}）；同名文件会替换原文件。`;
  $("#upload-input").accept = limits.file_types.join(",");
}

/* ---------- wiring ---------- */

function route() {
  const docId = new URLSearchParams(location.search).get("document");
  if (docId) openDocumentPage(docId, false);
  else if (library.shown) showList(false);
}

document.addEventListener("DOMContentLoaded", () => {
  const failed = (error) => { $("#library-count").textContent = `无法读取文件库：${problem(error)}`; };
  showLimits().catch(() => {});  // the hint's general words stay
  $("#tab-library").addEventListener("click", () => {
    if (library.shown) showList(true);
    loadLibrary().catch(failed);
  });
  $("#upload-input").addEventListener("change", (event) => { upload(event.target.files); event.target.value = ""; });
  const zone = $("#upload-form");
  zone.addEventListener("dragover", (event) => { event.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (event) => { event.preventDefault(); zone.classList.remove("over"); upload(event.dataTransfer.files); });
  $("#library-filter").addEventListener("input", () => { library.page = 0; renderLibrary(); });
  for (const header of document.querySelectorAll("#library-table th[data-sort]")) {
    header.addEventListener("click", () => {
      library.descending = library.sort === header.dataset.sort ? !library.descending : false;
      library.sort = header.dataset.sort;
      renderLibrary();
    });
  }
  $("#page-prev").addEventListener("click", () => { library.page -= 1; renderLibrary(); });
  $("#page-next").addEventListener("click", () => { library.page += 1; renderLibrary(); });
  $("#metadata-form").addEventListener("submit", saveMetadata);
  $("#metadata-cancel").addEventListener("click", () => { $("#metadata-form").hidden = true; });
  $("#document-back").addEventListener("click", (event) => { event.preventDefault(); showList(true); loadLibrary().catch(failed); });
  $("#document-search").addEventListener("click", (event) => {
    event.preventDefault();
    history.pushState(null, "", event.currentTarget.href);
    searchWithin(library.shown.doc_id);
  });
  $("#document-edit").addEventListener("click", () => editMetadata(library.shown));
  $("#document-reparse").addEventListener("click", reparseShown);
  $("#document-remove").addEventListener("click", async () => {
    if (await removeDocument(library.shown, (message) => { $("#document-status").textContent = message; })) showList(true);
  });
  window.addEventListener("popstate", route);
  if (new URLSearchParams(location.search).get("document")) loadLibrary().catch(failed).then(route);
});
