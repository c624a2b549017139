// Heron's web page: search, item view, indexing, duplicates, vectors, memory. Talks to /v1 only.
import { apply, lang, setLang, t } from "./i18n.js";

const $ = (id) => document.getElementById(id);
const DEBOUNCE_MS = 250;
const PAGE = 40;
const state = { image: null, imageUrl: null, seq: 0, words: [], vocabulary: null, mapQuery: null };

// ------------------------------------------------------------------------------------ api
// A key is never kept by the page: POST /v1/session puts it in an HttpOnly cookie, which
// signs fetches and the <img>/<video> URLs alike. X-Heron-Client proves a request is ours.
function headers(extra = {}) {
  return { "X-Heron-Client": "web", ...extra };
}

async function signIn(key) {
  const response = await fetch("/v1/session", {
    method: "POST",
    headers: headers({ Authorization: `Bearer ${key}` }),
  });
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error(body?.error?.message || `${response.status}`);
  return body;
}

async function signOut() {
  await fetch("/v1/session", { method: "DELETE", headers: headers() });
}

function showSession(body, error) {
  const text = error ? error.message
    : body && body.signed_in ? t("key.signedIn", { key: body.key, role: body.role })
      : t("key.notNeeded");
  $("key-status").textContent = text;
}

async function wireKey() {
  const legacy = localStorage.getItem("heron.key");  // an earlier page kept it here
  if (legacy) {
    localStorage.removeItem("heron.key");
    await signIn(legacy).catch(() => null);
  }
  fetch("/v1/session", { headers: headers() })
    .then((r) => (r.ok ? r.json() : null)).then((body) => { if (body) showSession(body); })
    .catch(() => null);
  $("api-key").addEventListener("change", async () => {
    const key = $("api-key").value.trim();
    $("api-key").value = "";
    try {
      if (key) showSession(await signIn(key)); else { await signOut(); showSession(null); }
    } catch (error) { showSession(null, error); }
  });
}

async function api(path, options = {}) {
  const response = await fetch(path, { ...options, headers: headers(options.headers || {}) });
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch { body = null; }
  if (!response.ok) {
    const message = body?.error?.message || `${response.status} ${response.statusText}`;
    throw new Error(message);
  }
  return body;
}

const postJson = (path, body) =>
  api(path, { method: "POST", body: JSON.stringify(body), headers: { "Content-Type": "application/json" } });

// ---------------------------------------------------------------------------------- helpers
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "style") node.style.cssText = value;  // CSSOM: allowed by the page's CSP
    else if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs = {}) {
  const node = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  return node;
}

function timecode(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60), r = s % 60;
  const pad = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${pad(m)}:${pad(r)}` : `${pad(m)}:${pad(r)}`;
}

function bytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = Number(n) || 0, i = 0;
  while (value >= 1024 && i < units.length - 1) { value /= 1024; i += 1; }
  return `${value.toFixed(i && value < 10 ? 1 : 0)} ${units[i]}`;
}

function kindLabel(kind) { return t(`kind.${kind}`); }

// "page 3", "slide 12", "00:42", "figure · page 3", "passage · page 1-2"
export function badge(kind, pointer = {}) {
  const page = pointer.page !== undefined
    ? `${t("kind.page")} ${pointer.page}${pointer.last_page && pointer.last_page !== pointer.page ? `–${pointer.last_page}` : ""}`
    : null;
  if (kind === "page") return page || kindLabel(kind);
  if (kind === "slide") return `${t("kind.slide")} ${pointer.slide ?? ""}`.trim();
  if (kind === "frame") return pointer.time !== undefined ? timecode(pointer.time) : (pointer.timecode || kindLabel(kind));
  if ((kind === "figure" || kind === "passage") && page) return `${kindLabel(kind)} · ${page}`;
  if (kind === "figure" && pointer.slide !== undefined) return `${kindLabel(kind)} · ${t("kind.slide")} ${pointer.slide}`;
  return kindLabel(kind);
}

// the words of a query, without filters, for highlighting
function queryWords(query) {
  const words = [];
  for (const match of (query || "").matchAll(/"([^"]+)"|(\S+)/g)) {
    const token = match[1] ?? match[2];
    if (!match[1] && (/^-/.test(token) || /^[a-z_]+(:|[<>!=]=?)/i.test(token))) continue;
    words.push(token);
    if (/[\u3400-\u9fff]/.test(token)) {  // Chinese: each pair of characters too
      for (let i = 0; i + 2 <= token.length; i += 1) words.push(token.slice(i, i + 2));
    }
  }
  return words.filter((w) => w.length > 1 || /[\u3400-\u9fff]/.test(w));
}

function highlighted(text, words) {
  const container = document.createDocumentFragment();
  if (!words.length) { container.append(text); return container; }
  const escaped = [...new Set(words)].sort((a, b) => b.length - a.length)
    .map((w) => w.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
  const pattern = new RegExp(`(${escaped.join("|")})`, "gi");
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    container.append(text.slice(last, match.index), el("mark", { text: match[0] }));
    last = match.index + match[0].length;
  }
  container.append(text.slice(last));
  return container;
}

// ------------------------------------------------------------------------------------ views
const VIEWS = ["search", "index", "duplicates", "vectors", "memory"];

function show(view, focus = false) {
  if (!VIEWS.includes(view)) view = "search";
  for (const name of VIEWS) $(`view-${name}`).hidden = name !== view;
  for (const button of document.querySelectorAll(".tabs button")) {
    if (button.dataset.view === view) button.setAttribute("aria-current", "page");
    else button.removeAttribute("aria-current");
  }
  if (location.hash !== `#${view}`) history.replaceState(null, "", `#${view}`);
  if (view === "duplicates") loadDuplicates();
  if (view === "vectors") loadVectors();
  if (view === "memory") loadMemory();
  if (focus) {
    const first = $(`view-${view}`).querySelector("input, button, select");
    (first || $("main")).focus();
  }
}

// ----------------------------------------------------------------------------------- search
let timer = null;

function scheduleSearch() {
  clearTimeout(timer);
  timer = setTimeout(runSearch, DEBOUNCE_MS);
}

async function runSearch() {
  clearTimeout(timer);
  const query = $("q").value.trim();
  const seq = ++state.seq;
  const status = $("status");
  if (!query && !state.image) {
    $("results").replaceChildren();
    status.textContent = "";
    status.classList.remove("error");
    return;
  }
  status.textContent = t("search.searching");
  status.classList.remove("error");
  const minRelevance = $("f-relevance").value;
  try {
    let answer;
    const like = query.match(/^like:([0-9a-f]{32})$/);
    if (state.image) {
      const form = new FormData();
      form.append("image", state.image, state.image.name || "query.png");
      if (query) form.append("query", query);
      form.append("k", String(PAGE));
      if (minRelevance !== "") form.append("min_relevance", minRelevance);
      answer = await api("/v1/search/image", { method: "POST", body: form });
    } else if (like) {
      const body = { mix: `item:${like[1]}`, k: PAGE };
      if ($("f-kind").value) body.kind = $("f-kind").value;
      answer = await postJson("/v1/search", body);
    } else {
      const body = { query, k: PAGE };
      if (minRelevance !== "") body.min_relevance = Number(minRelevance);
      answer = await postJson("/v1/search", body);
    }
    if (seq !== state.seq) return;  // a later search is on its way
    state.words = like ? [] : queryWords(query);
    renderHits(answer.hits);
    const parts = [answer.hits.length ? t("search.hits", { n: answer.hits.length, ms: Math.round(answer.took_ms) }) : t("search.none")];
    for (const warning of answer.warnings || []) parts.push(warning);
    status.textContent = parts.join(" · ");
  } catch (error) {
    if (seq !== state.seq) return;
    $("results").replaceChildren();
    status.textContent = t("error", { message: error.message });
    status.classList.add("error");
  }
}

function renderHits(hits) {
  const cards = hits.map((hit) => {
    const label = `${hit.source} · ${badge(hit.kind, hit.pointer)}`;
    const visual = hit.thumbnail_url
      ? el("img", { src: hit.thumbnail_url, alt: label, loading: "lazy", width: 180, height: 135 })
      : el("span", { class: "textcard", text: hit.excerpt || hit.source });
    const relevance = hit.relevance === null || hit.relevance === undefined
      ? el("span", { class: "relevance", title: "cosine", text: `cos ${hit.score.toFixed(2)}` })
      : el("span", { class: "relevance", title: t("search.relevance"), text: `${Math.round(hit.relevance * 100)}%` });
    return el("article", { class: "hit", "data-id": hit.id, "data-kind": hit.kind },
      el("button", { type: "button", class: "open", "aria-label": label, onclick: () => openItem(hit.id) }, visual),
      el("div", { class: "meta" },
        relevance,
        el("span", { class: "badge kind", text: badge(hit.kind, hit.pointer) }),
        el("span", { class: "name", title: hit.source, text: hit.source })),
      el("button", { type: "button", class: "like", onclick: () => moreLike(hit) }, t("search.like")));
  });
  $("results").replaceChildren(...cards);
}

function moreLike(hit) {
  clearImage(false);
  if (hit.thumbnail_url) {
    $("q").value = `like:${hit.id}`;
  } else {  // a passage: its own words
    $("q").value = (hit.excerpt || "").replace(/["\\:]/g, " ").replace(/\s+/g, " ").slice(0, 300).trim();
  }
  runSearch();
  $("q").focus();
}

// the filter bar writes the query language into the box
const FILTER_FIELDS = ["kind", "taken", "colour", "color", "category", "tag"];

function writeFilters() {
  const kept = [];
  for (const match of $("q").value.matchAll(/"[^"]*"|\S+/g)) {
    const token = match[0];
    const field = token.replace(/^-/, "").match(/^([a-z_]+)(:|[<>!=]=?)/i);
    if (field && FILTER_FIELDS.includes(field[1].toLowerCase())) continue;
    if (/^like:/.test(token)) continue;
    kept.push(token);
  }
  const added = [];
  if ($("f-kind").value) added.push(`kind:${$("f-kind").value}`);
  if ($("f-from").value) added.push(`taken>=${$("f-from").value}`);
  if ($("f-to").value) added.push(`taken<=${$("f-to").value}`);
  if ($("f-colour").value) added.push(`colour:${$("f-colour").value}`);
  if ($("f-category").value) added.push(`category:${$("f-category").value}`);
  const tag = $("f-tag").value.trim().replace(/[\s"]+/g, "-");
  if (tag) added.push(`tag:${tag}`);
  $("q").value = [...kept, ...added].join(" ");
  runSearch();
}

// the box's filters back into the bar (typed by hand)
function readFilters() {
  const query = $("q").value;
  const value = (pattern) => (query.match(pattern) || [])[1] || "";
  const setIf = (id, v) => {
    const input = $(id);
    if (input.tagName === "SELECT" && v && ![...input.options].some((o) => o.value === v)) return;
    input.value = v;
  };
  setIf("f-kind", value(/(?:^|\s)kind:(\w+)(?=\s|$)/));
  setIf("f-from", value(/(?:^|\s)taken>=(\d{4}-\d{2})(?=\s|$)/));
  setIf("f-to", value(/(?:^|\s)taken<=(\d{4}-\d{2})(?=\s|$)/));
  setIf("f-colour", value(/(?:^|\s)colou?r:(\w+)(?=\s|$)/));
  setIf("f-category", value(/(?:^|\s)category:(\w+)(?=\s|$)/));
  setIf("f-tag", value(/(?:^|\s)tag:(\S+)/));
}

async function loadVocabulary() {
  try {
    state.vocabulary = await api("/v1/insight/vocabulary");
  } catch {
    return;
  }
  fillVocabulary();
}

function fillVocabulary() {
  const vocabulary = state.vocabulary;
  if (!vocabulary) return;
  const fill = (id, items) => {
    const select = $(id), chosen = select.value;
    const any = el("option", { value: "", "data-i18n": "filters.any" }, t("filters.any"));
    select.replaceChildren(any, ...items.map((item) =>
      el("option", { value: item.name }, lang() === "zh" ? `${item.zh} ${item.name}` : item.name)));
    select.value = chosen;
  };
  fill("f-colour", vocabulary.colours);
  fill("f-category", vocabulary.categories);
}

// search by picture: picker, drop, paste
function searchByImage(file) {
  if (!file || !file.type.startsWith("image/")) return;
  if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
  state.image = file;
  state.imageUrl = URL.createObjectURL(file);
  $("query-image-thumb").src = state.imageUrl;
  $("query-image").hidden = false;
  if (/^like:/.test($("q").value)) $("q").value = "";
  show("search");
  runSearch();
}

function clearImage(rerun = true) {
  if (!state.image) return;
  state.image = null;
  if (state.imageUrl) URL.revokeObjectURL(state.imageUrl);
  state.imageUrl = null;
  $("query-image").hidden = true;
  $("image-file").value = "";
  if (rerun) runSearch();
}

function wireDrop() {
  let depth = 0;
  const overlay = $("drop-overlay");
  const hasFiles = (event) => [...(event.dataTransfer?.types || [])].includes("Files");
  document.addEventListener("dragenter", (event) => {
    if (!hasFiles(event) || !$("view-index").hidden) return;
    depth += 1; overlay.hidden = false;
  });
  document.addEventListener("dragleave", () => { depth = Math.max(0, depth - 1); if (!depth) overlay.hidden = true; });
  document.addEventListener("dragover", (event) => { if (hasFiles(event)) event.preventDefault(); });
  document.addEventListener("drop", (event) => {
    if (!hasFiles(event)) return;
    event.preventDefault();
    depth = 0; overlay.hidden = true;
    const files = [...event.dataTransfer.files];
    if (!$("view-index").hidden) { uploadFiles(files); return; }
    searchByImage(files.find((f) => f.type.startsWith("image/")));
  });
  document.addEventListener("paste", (event) => {
    const item = [...(event.clipboardData?.items || [])].find((i) => i.kind === "file" && i.type.startsWith("image/"));
    if (!item) return;
    event.preventDefault();
    searchByImage(item.getAsFile());
  });
}

// -------------------------------------------------------------------------------- item view
async function openItem(id) {
  const dialog = $("item-dialog");
  let item, details;
  try {
    [item, details] = await Promise.all([
      api(`/v1/items/${id}`),
      api(`/v1/insight/items/${id}`).catch(() => ({ exif: {}, duplicates: null })),
    ]);
  } catch (error) {
    $("status").textContent = t("error", { message: error.message });
    return;
  }
  $("item-title").textContent = `${item.source} · ${badge(item.kind, item.pointer)}`;
  const media = $("item-media");
  const pointer = item.pointer || {};
  if (item.kind === "frame") {
    const at = Number(pointer.time ?? 0);
    media.replaceChildren(el("video", { src: `${item.content_url}#t=${at}`, controls: true, preload: "metadata",
      "aria-label": t("item.openVideo", { time: timecode(at) }) }));
  } else if (item.kind === "image") {
    media.replaceChildren(el("img", { src: item.content_url, alt: item.source }));
  } else if (item.thumbnail_url) {
    media.replaceChildren(el("img", { src: item.thumbnail_url, alt: `${item.source} ${badge(item.kind, pointer)}` }));
  } else {
    media.replaceChildren();
  }
  // the document or video it belongs to
  const belongs = $("item-belongs");
  if (item.kind === "image") {
    belongs.replaceChildren(el("a", { href: item.content_url, target: "_blank", rel: "noopener" }, t("item.openFile")));
  } else if (item.kind === "frame") {
    const at = Number(pointer.time ?? 0);
    belongs.replaceChildren(t("item.in", { name: item.source }), " · ",
      el("a", { href: `${item.content_url}#t=${at}`, target: "_blank", rel: "noopener" }, t("item.openVideo", { time: timecode(at) })));
  } else {
    const page = pointer.page ?? pointer.slide;
    const href = pointer.page !== undefined ? `${item.content_url}#page=${pointer.page}` : item.content_url;
    belongs.replaceChildren(t("item.in", { name: item.source }), " · ",
      el("a", { href, target: "_blank", rel: "noopener" }, page !== undefined && pointer.page !== undefined ? t("item.open", { page }) : t("item.openFile")));
  }
  const text = item.text || "";
  $("item-text").replaceChildren(text ? highlighted(text, state.words) : t("item.noText"));
  // tags
  const tags = item.tags || {};
  const chips = [];
  for (const tag of tags.user || []) chips.push(el("span", { class: "tag user", title: t("item.user") }, `#${tag}`));
  if (tags.category) chips.push(el("span", { class: "tag category", title: t("item.category") }, `${tags.category}${tags.category_score ? ` ${Math.round(tags.category_score * 100)}%` : ""}`));
  (tags.colours || []).forEach((colour, n) => chips.push(el("span", { class: "tag colour", title: t("item.colours") },
    el("span", { class: "swatch", style: `background:${colour}` }), lang() === "zh" && tags.colours_zh ? tags.colours_zh[n] : colour)));
  if (tags.scheme) chips.push(el("span", { class: "tag scheme", title: t("item.scheme") }, tags.scheme));
  $("item-tags").replaceChildren(...chips);
  // fields: size, format, bytes, dates, EXIF, extractor fields
  const fields = [["kind", kindLabel(item.kind)], ["size", `${item.width} × ${item.height}`], ["format", item.format],
    ["bytes", bytes(item.bytes)], ["modified", item.modified_at], ["indexed", item.indexed_at], ["model", item.model]];
  for (const [key, value] of Object.entries(details.exif || {})) fields.push([key, value]);
  for (const [key, value] of Object.entries(item.extra || {})) {
    if (key === "ocr") continue;
    fields.push([key, typeof value === "object" ? JSON.stringify(value) : value]);
  }
  if ((item.names || []).length > 1) fields.push(["copies", item.names.join(", ")]);
  $("item-fields").replaceChildren(...fields.filter(([, v]) => v !== null && v !== undefined && v !== "")
    .flatMap(([k, v]) => [el("dt", { text: k }), el("dd", { text: String(v) })]));
  // duplicates
  const set = details.duplicates;
  const members = set ? [set.keep, ...set.others].filter((f) => f.id !== id || set.kind === "exact") : [];
  $("item-dups").replaceChildren(...(members.length ? members.map((f) =>
    el("button", { type: "button", class: "dup", "data-id": f.id, "aria-label": f.source, onclick: () => openItem(f.id) },
      el("img", { src: f.thumbnail_url, alt: "" }), f.source)) : [t("item.noDups")]));
  if (!dialog.open) dialog.showModal();
  $("item-close").focus();
}

// ---------------------------------------------------------------------------------- indexing
async function uploadFiles(files) {
  const error = $("upload-error");
  error.textContent = "";
  if (!files.length) { error.textContent = t("index.none"); return; }
  const form = new FormData();
  for (const file of files) form.append("files", file, file.name);
  $("job").hidden = false;
  $("job-status").textContent = t("index.uploading");
  $("job-progress").value = 0;
  let job;
  try {
    job = await api("/v1/items", { method: "POST", body: form });
  } catch (failure) {
    error.textContent = t("error", { message: failure.message });
    $("job").hidden = true;
    return;
  }
  while (true) {
    renderJob(job);
    if (job.state === "done" || job.state === "failed") break;
    await new Promise((resolve) => setTimeout(resolve, 300));
    try { job = await api(`/v1/jobs/${job.id}`); } catch (failure) { error.textContent = t("error", { message: failure.message }); break; }
  }
}

function renderJob(job) {
  const p = job.progress || {};
  $("job-progress").max = Math.max(1, p.total || 1);
  $("job-progress").value = p.done || 0;
  const eta = p.eta_s === null || p.eta_s === undefined ? "–" : `${Math.round(p.eta_s)} s`;
  const rate = p.rate === null || p.rate === undefined ? "–" : p.rate.toFixed(2);
  $("job-status").textContent = t("index.status", { state: job.state, done: p.done ?? 0, total: p.total ?? 0, rate, eta });
  if (job.error) $("upload-error").textContent = t("error", { message: `${job.error.code}: ${job.error.message}` });
  $("job-files").replaceChildren(...job.files.map((file) => el("tr", { "data-outcome": file.outcome },
    el("td", {}, file.item_ids.length
      ? el("a", { href: "#search", onclick: (event) => { event.preventDefault(); openItem(file.item_ids[0]); } }, file.name)
      : file.name),
    el("td", { text: file.media_type }), el("td", { text: file.outcome }), el("td", { text: file.reason || "" }))));
}

// -------------------------------------------------------------------------------- duplicates
const ignored = () => new Set(JSON.parse(localStorage.getItem("heron.ignoredDuplicates") || "[]"));
const setKey = (set) => [set.keep.id, ...set.others.map((o) => o.id)].sort().join(",");

async function loadDuplicates() {
  const status = $("dup-status");
  status.textContent = t("dup.finding");
  status.classList.remove("error");
  let answer;
  try { answer = await api("/v1/duplicates"); } catch (error) {
    status.textContent = t("error", { message: error.message }); status.classList.add("error"); return;
  }
  const skip = ignored();
  const sets = answer.sets.filter((set) => !skip.has(setKey(set)));
  status.textContent = sets.length ? t("dup.sets", { n: sets.length }) : t("dup.none");
  $("dup-list").replaceChildren(...sets.map(renderSet));
}

function renderSet(set) {
  const files = [set.keep, ...set.others];
  const exact = set.kind === "exact";
  return el("section", { class: "dup-set", "data-kind": set.kind, "aria-label": set.keep.source },
    el("h3", {}, `${exact ? t("dup.exact") : t("dup.near")} · ${set.keep.source}`),
    exact ? el("p", { class: "status", text: t("dup.exactNote") }) : null,
    el("div", { class: "files" }, files.map((file, n) => el("div", { class: `dup-file${n === 0 ? " keep" : ""}`, "data-id": file.id },
      el("button", { type: "button", class: "open", "aria-label": file.source, onclick: () => openItem(file.id) },
        el("img", { src: file.thumbnail_url, alt: "" })),
      el("span", { class: "name", text: file.source }),
      el("span", { text: `${file.width} × ${file.height} · ${bytes(file.bytes)}${n === 0 ? ` · ${t("dup.kept")}` : ` · ${file.reason}`}` }),
      exact ? null : el("button", { type: "button", class: "keep-button", onclick: () => keepOnly(set, file) }, t("dup.keep"))))),
    el("p", {}, el("button", { type: "button", class: "ignore-button", onclick: () => {
      const skip = ignored(); skip.add(setKey(set));
      localStorage.setItem("heron.ignoredDuplicates", JSON.stringify([...skip]));
      loadDuplicates();
    } }, t("dup.ignore"))));
}

async function keepOnly(set, keep) {
  const doomed = [set.keep, ...set.others].filter((f) => f.id !== keep.id);
  if (!window.confirm(t("dup.confirm", { n: doomed.length, name: keep.source }))) return;
  try {
    for (const file of doomed) await api(`/v1/items/${file.id}`, { method: "DELETE" });
  } catch (error) {
    $("dup-status").textContent = t("error", { message: error.message });
  }
  loadDuplicates();
}

// ----------------------------------------------------------------------------------- vectors
const KIND_COLOURS = { image: "#0b57d0", page: "#b3261e", figure: "#f29900", slide: "#188038", frame: "#9334e6", passage: "#5f6368" };

async function loadVectors() {
  const input = $("vec-q");
  const fromSearch = $("q").value.trim();
  if (!input.value && fromSearch && !/^like:/.test(fromSearch)) input.value = fromSearch;
  const query = input.value.trim();
  const status = $("vec-status");
  status.textContent = "";
  status.classList.remove("error");
  const tasks = [loadMap(query)];
  if (query) tasks.push(loadQueryVector(query));
  await Promise.all(tasks);
}

async function loadQueryVector(query) {
  let answer;
  try { answer = await postJson("/v1/insight/vector", { query }); } catch (error) {
    $("vec-status").textContent = t("error", { message: error.message }); $("vec-status").classList.add("error"); return;
  }
  $("vec-caption").textContent = t("vec.valuesOf", { dim: answer.dim, text: answer.text, model: answer.model, norm: answer.norm.toFixed(3) });
  const chart = $("vec-bars");
  const width = 320, height = 120, n = answer.values.length;
  const top = Math.max(1e-6, ...answer.values.map(Math.abs));
  const step = width / Math.max(1, n);
  const bars = [svg("line", { x1: 0, x2: width, y1: height / 2, y2: height / 2, stroke: "currentColor", "stroke-opacity": 0.3 })];
  answer.values.forEach((value, i) => {
    const h = (Math.abs(value) / top) * (height / 2 - 2);
    const rect = svg("rect", { class: "value-bar", x: i * step + 1, width: Math.max(1, step - 2),
      y: value >= 0 ? height / 2 - h : height / 2, height: Math.max(0.5, h), fill: value >= 0 ? "#0b57d0" : "#b3261e" });
    const title = svg("title", {}); title.textContent = `[${i}] ${value}`;
    rect.append(title);
    bars.push(rect);
  });
  chart.replaceChildren(...bars);
  const best = Math.max(1e-6, ...answer.nearest.map((h) => h.score));
  $("vec-nearest").replaceChildren(...answer.nearest.map((hit) => el("div", { class: "bar", "data-id": hit.id },
    el("span", { title: hit.name }, `${hit.name} · ${badge(hit.kind, hit.pointer)}`),
    el("span", {}, el("span", { class: "fill", style: `display:block;width:${Math.max(2, (hit.score / best) * 100)}%` })),
    el("span", { class: "num", text: hit.score.toFixed(3) }))));
}

let mapSeq = 0;

async function loadMap(query) {
  const seq = ++mapSeq;  // a later map (another query) wins
  let answer;
  const params = new URLSearchParams({ sample: "2000" });
  if (query) params.set("query", query);
  try { answer = await api(`/v1/insight/map?${params}`); } catch (error) {
    if (seq !== mapSeq) return;
    $("vec-status").textContent = t("error", { message: error.message }); $("vec-status").classList.add("error"); return;
  }
  if (seq !== mapSeq) return;
  const map = $("vec-map");
  const W = 400, H = 300, pad = 12;
  const all = [...answer.points, ...(answer.query ? [answer.query] : [])];
  if (!all.length) { map.replaceChildren(); return; }
  const xs = all.map((p) => p.x), ys = all.map((p) => p.y);
  const [x0, x1, y0, y1] = [Math.min(...xs), Math.max(...xs), Math.min(...ys), Math.max(...ys)];
  const sx = (x) => pad + ((x - x0) / Math.max(1e-9, x1 - x0)) * (W - 2 * pad);
  const sy = (y) => H - pad - ((y - y0) / Math.max(1e-9, y1 - y0)) * (H - 2 * pad);
  const hover = $("map-hover");
  const dots = answer.points.map((p) => {
    const dot = svg("circle", { class: "point", cx: sx(p.x).toFixed(1), cy: sy(p.y).toFixed(1), r: 4,
      fill: KIND_COLOURS[p.kind] || "#888", "fill-opacity": 0.75, tabindex: 0, "data-id": p.id,
      "aria-label": `${p.name} (${kindLabel(p.kind)})` });
    const title = svg("title", {}); title.textContent = `${p.name} · ${kindLabel(p.kind)}`;
    dot.append(title);
    const say = () => { hover.textContent = `${p.name} · ${kindLabel(p.kind)}`; };
    dot.addEventListener("mouseenter", say);
    dot.addEventListener("focus", say);
    dot.addEventListener("click", () => openItem(p.id));
    dot.addEventListener("keydown", (event) => { if (event.key === "Enter") openItem(p.id); });
    return dot;
  });
  if (answer.query) {
    const x = sx(answer.query.x), y = sy(answer.query.y);
    const star = svg("path", { class: "query-point", d: `M${x - 7},${y}L${x + 7},${y}M${x},${y - 7}L${x},${y + 7}`,
      stroke: "#f29900", "stroke-width": 3 });
    const title = svg("title", {}); title.textContent = `${t("vec.query")}: ${answer.query.text}`;
    star.append(title);
    dots.push(star);
  }
  map.replaceChildren(...dots);
  $("map-caption").textContent = t("vec.mapOf", { n: answer.points.length, total: answer.total,
    a: Math.round(answer.explained[0] * 100), b: Math.round(answer.explained[1] * 100) });
}

// ------------------------------------------------------------------------------------ memory
let memory = null;

async function loadMemory() {
  try {
    const [stats, used] = await Promise.all([api("/v1/stats"), api("/v1/insight/memory")]);
    memory = { stats, used };
  } catch (error) {
    $("mem-table").tBodies[0].replaceChildren(el("tr", {}, el("td", { class: "error", text: t("error", { message: error.message }) })));
    return;
  }
  renderMemory();
}

function renderMemory() {
  if (!memory) return;
  const { stats, used } = memory;
  const row = (label, value, cls = "") => el("tr", { class: cls }, el("th", { scope: "row", text: label }), el("td", { class: "num", text: value }));
  const kinds = stats.units_by_kind && Object.keys(stats.units_by_kind).length ? stats.units_by_kind : used.units_by_kind;
  const storeBytes = stats.store_bytes ?? used.store_bytes;
  const total = storeBytes + used.thumbnail_bytes + used.catalog_bytes;
  $("mem-table").tBodies[0].replaceChildren(
    row(t("mem.model"), stats.model || used.model || "–"),
    row(t("mem.dim"), String(used.dim)),
    ...Object.entries(kinds).map(([kind, n]) => row(t("mem.unitsOf", { kind: kindLabel(kind) }), n.toLocaleString())),
    row(t("mem.units"), used.units.toLocaleString(), "total"),
    row(t("mem.vectors", { units: used.units.toLocaleString(), dim: used.dim }), bytes(used.vector_bytes)),
    row(t("mem.store"), bytes(storeBytes)),
    row(t("mem.thumbs"), bytes(used.thumbnail_bytes)),
    row(t("mem.catalog"), bytes(used.catalog_bytes)),
    row(t("mem.total"), bytes(total), "total"));
  const n = Math.max(0, Math.floor(Number($("mem-n").value) || 0));
  const per = used.units ? total / used.units : 0;
  $("mem-projection").tBodies[0].replaceChildren(
    row(t("mem.projVectors", { n: n.toLocaleString(), dim: used.dim }), bytes(n * used.dim * 4)),
    row(t("mem.projDisk", { n: n.toLocaleString(), per: bytes(per) }), bytes(n * per)),
    row(t("mem.projTotal", { n: (n + used.units).toLocaleString() }), bytes((n + used.units) * used.dim * 4)));
}

// -------------------------------------------------------------------------------------- wire
function init() {
  apply();
  for (const button of document.querySelectorAll(".tabs button")) {
    button.addEventListener("click", () => show(button.dataset.view, true));
  }
  $("lang-toggle").addEventListener("click", () => setLang(lang() === "zh" ? "en" : "zh"));
  document.addEventListener("heron:lang", () => { fillVocabulary(); renderMemory(); });
  $("search-form").addEventListener("submit", (event) => { event.preventDefault(); runSearch(); });
  $("q").addEventListener("input", () => { readFilters(); scheduleSearch(); });
  $("q").addEventListener("keydown", (event) => {
    if (event.key === "Escape" && $("q").value) { event.preventDefault(); $("q").value = ""; readFilters(); runSearch(); }
  });
  for (const id of ["f-kind", "f-from", "f-to", "f-colour", "f-category", "f-relevance"]) {
    $(id).addEventListener("change", () => (id === "f-relevance" ? runSearch() : writeFilters()));
  }
  $("f-tag").addEventListener("change", writeFilters);
  $("f-tag").addEventListener("keydown", (event) => { if (event.key === "Enter") { event.preventDefault(); writeFilters(); } });
  $("image-file").addEventListener("change", () => searchByImage($("image-file").files[0]));
  $("query-image-clear").addEventListener("click", () => clearImage());
  $("item-close").addEventListener("click", () => $("item-dialog").close());
  $("item-dialog").addEventListener("click", (event) => { if (event.target === $("item-dialog")) $("item-dialog").close(); });
  $("upload-form").addEventListener("submit", (event) => { event.preventDefault(); uploadFiles([...$("upload-files").files]); });
  $("dup-reload").addEventListener("click", loadDuplicates);
  $("dup-unignore").addEventListener("click", () => { localStorage.removeItem("heron.ignoredDuplicates"); loadDuplicates(); });
  $("vec-form").addEventListener("submit", (event) => { event.preventDefault(); loadVectors(); });
  $("mem-n").addEventListener("input", renderMemory);
  $("mem-form").addEventListener("submit", (event) => { event.preventDefault(); renderMemory(); });
  wireKey();
  wireDrop();
  loadVocabulary();
  window.addEventListener("hashchange", () => show(location.hash.slice(1)));
  show(location.hash.slice(1) || "search");
  document.body.dataset.ready = "1";
}

init();
