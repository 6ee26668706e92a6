// The 文件库 tab: the document list (sort, filter, pages), uploads with a progress bar per job,
// corrections of a document's metadata, removal. Uses app.js's helpers ($, el, getJSON, openDocument).
// Writes send the API key the user typed once (kept in sessionStorage, never in a URL).
"use strict";

const PAGE_SIZE = 50;
const STAGES = { queued: "排队中", parsing: "解析", embedding: "向量化", committing: "写入索引" };
const library = { documents: [], sort: "title", descending: false, page: 0 };

// A write request; on 401 the page asks for the API key once and tries again.
async function writeRequest(url, options) {
  const send = () => fetch(url, {
    ...options,
    headers: { ...(options.headers || {}), ...(sessionStorage.getItem("policyqa-key") ? { "X-API-Key": sessionStorage.getItem("policyqa-key") } : {}) },
  });
  let response = await send();
  if (response.status === 401) {
    const key = window.prompt("此操作需要 API 密钥（POLICYQA_API_KEY）：");
    if (!key) throw new Error("需要 API 密钥才能修改文件库");
    sessionStorage.setItem("policyqa-key", key);
    response = await send();
    if (response.status === 401) sessionStorage.removeItem("policyqa-key");
  }
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(response.status === 401 ? "API 密钥不正确" : errorMessage(body, response.status));
  return body;
}

async function loadLibrary() {
  const [body, stats] = await Promise.all([getJSON("/api/documents"), getJSON("/api/stats")]);
  library.documents = body.documents;
  $("#stats").textContent = `${stats.documents} 份文件 · ${stats.clauses} 个条款`;
  renderLibrary();
}

function shownDocuments() {
  const needle = $("#library-filter").value.trim();
  const fields = ["title", "issuer", "doc_number", "region", "source_path"];
  const found = library.documents.filter((d) => !needle || fields.some((f) => (d[f] || "").includes(needle)));
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
  $("#library-count").textContent = `${found.length} 份文件`;
  $("#page-info").textContent = `第 ${library.page + 1} / ${pages} 页`;
  $("#page-prev").disabled = library.page === 0;
  $("#page-next").disabled = library.page >= pages - 1;
}

function documentRow(doc) {
  const row = el("tr");
  row.dataset.docId = doc.doc_id;
  const title = el("td", "title");
  const link = el("a", null, doc.title);
  link.href = "#";
  link.addEventListener("click", (event) => { event.preventDefault(); openDocument(doc.doc_id); });
  title.append(link);
  row.append(title);
  for (const field of ["issuer", "doc_number", "date", "region", "clauses"]) row.append(el("td", field, doc[field] ?? ""));
  row.append(el("td", "source", doc.source_path.split("/").pop()));
  const actions = el("td", "actions");
  const edit = el("button", "link edit", "修改");
  edit.type = "button";
  edit.addEventListener("click", () => editMetadata(doc));
  const remove = el("button", "link remove", "删除");
  remove.type = "button";
  remove.addEventListener("click", () => removeDocument(doc));
  actions.append(edit, remove);
  row.append(actions);
  return row;
}

function editMetadata(doc) {
  const form = $("#metadata-form");
  form.dataset.docId = doc.doc_id;
  for (const field of ["title", "issuer", "doc_number", "date", "region"]) form.elements[field].value = doc[field] || "";
  $("#metadata-status").textContent = "";
  form.hidden = false;
  form.scrollIntoView({ block: "nearest" });
}

async function saveMetadata(event) {
  event.preventDefault();
  const form = $("#metadata-form");
  const change = {};
  for (const field of ["title", "issuer", "doc_number", "date", "region"]) change[field] = form.elements[field].value.trim();
  $("#metadata-status").textContent = "保存中…";
  try {
    await writeRequest(`/api/documents/${encodeURIComponent(form.dataset.docId)}`, {
      method: "PATCH", headers: { "Content-Type": "application/json" }, body: JSON.stringify(change),
    });
    form.hidden = true;
    await loadLibrary();
  } catch (error) {
    $("#metadata-status").textContent = error.message;
  }
}

async function removeDocument(doc) {
  if (!window.confirm(`确定从索引中删除《${doc.title}》？`)) return;
  try {
    await writeRequest(`/api/documents/${encodeURIComponent(doc.doc_id)}`, { method: "DELETE" });
    await loadLibrary();
  } catch (error) {
    $("#library-count").textContent = `删除失败：${error.message}`;
  }
}

// One upload request = one job: a line with its files, a progress bar and, once done, what became of each file.
async function upload(files) {
  if (!files.length) return;
  const line = el("li", "job");
  const label = el("span", "job-files", Array.from(files, (f) => f.name).join("、"));
  const bar = el("progress");
  const state = el("span", "job-state", "上传中…");
  const outcome = el("ul", "job-outcome");
  line.append(label, bar, state, outcome);
  $("#upload-jobs").prepend(line);
  const form = new FormData();
  for (const file of files) form.append("files", file);
  try {
    let job = await writeRequest("/api/documents", { method: "POST", body: form });
    while (!["done", "failed", "interrupted"].includes(job.state)) {
      state.textContent = STAGES[job.stage || job.state] || job.state;
      if (job.total) { bar.max = job.total; bar.value = job.done || 0; }
      await new Promise((resolve) => setTimeout(resolve, 500));
      job = await getJSON(job.status_url);
    }
    bar.max = 1;
    bar.value = job.state === "done" ? 1 : 0;
    state.textContent = job.state === "done" ? "完成" : `失败：${job.error ? job.error.message : job.state}`;
    line.classList.add(job.state);
    const result = job.result || {};
    outcome.replaceChildren(
      ...(result.documents || []).map((d) => el("li", "added", `已加入：${d.title}（${d.clauses} 个条款）`)),
      ...(result.duplicates || []).map((d) => el("li", "duplicate", `重复：${d.file}，${d.reason}`)),
      ...(result.skipped || []).map((d) => el("li", "skipped", `未加入：${d.file}，${d.reason}`)),
    );
    await loadLibrary();
  } catch (error) {
    line.classList.add("failed");
    state.textContent = `失败：${error.message}`;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("#tab-library").addEventListener("click", () => loadLibrary().catch((e) => { $("#library-count").textContent = e.message; }));
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
});
