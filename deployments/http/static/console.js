// prog-image console: gallery, image page with a pipeline playground, batch jobs. Plain JavaScript,
// no build step. Views are <template>s in index.html, routed by the URL's hash: #/, #/<id>, #/jobs, #/jobs/<id>.
"use strict";

const BASE = location.pathname.replace(/[^/]*$/, ""); // the console's own prefix: every URL is relative to it
const KEY = "prog-image-key";
const THUMB = "thumbnail:size=320";
const PREVIEW = "thumbnail:size=1600";
const $ = (selector, root = document) => root.querySelector(selector);
let ABOUT = null; // GET /about: grammar, operations, and which credentials this deployment asks for
let leave = () => {}; // undoes the current view's timers and listeners

// ---------- API ----------

class ApiFailure extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

const href = (path) => BASE + path.replace(/^\//, "");
const authHeaders = () => (sessionStorage.getItem(KEY) ? { Authorization: `Bearer ${sessionStorage.getItem(KEY)}` } : {});

async function failure(response) {
  let code = `http_${response.status}`, message = response.statusText || "the request failed";
  try {
    const body = await response.json();
    if (body && body.error) ({ code, message } = body.error);
  } catch { /* not JSON: keep the status line */ }
  return new ApiFailure(response.status, code, message);
}

async function api(path, { method = "GET", json } = {}) {
  const headers = authHeaders();
  if (json !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(href(path), { method, headers, body: json === undefined ? undefined : JSON.stringify(json) });
  } catch (error) {
    throw new ApiFailure(0, "network", `the service did not answer (${error.message})`);
  }
  if (!response.ok) throw await failure(response);
  return response.status === 204 ? null : response.json();
}

// Image URLs: as they are, or signed by the server (POST /sign, with the API key) when it requires signatures.
const signedCache = new Map(); // path -> {url, until}
async function imageUrls(paths) {
  if (!ABOUT.signed_urls) return paths.map(href);
  const now = Date.now();
  const todo = [...new Set(paths.filter((p) => !(signedCache.get(p)?.until > now)))];
  if (todo.length) {
    const { urls } = await api("/sign", { method: "POST", json: { paths: todo.map(href) } });
    todo.forEach((p, i) => signedCache.set(p, { url: urls[i], until: now + 50 * 60 * 1000 }));
  }
  return paths.map((p) => signedCache.get(p).url);
}
const imageUrl = async (path) => (await imageUrls([path]))[0];
const thumbPath = (id, ops = THUMB) => `/${id}/process?ops=${ops}&format=webp`;

// Readable query strings: ":" "," "=" are legal in a query, so the copied URL reads like the grammar.
const queryValue = (v) => encodeURIComponent(v).replace(/%3A/g, ":").replace(/%2C/g, ",").replace(/%3D/g, "=");

// ---------- Feedback ----------

function alertBox(kind, title, detail, code) {
  const box = document.createElement("div");
  box.className = `alert ${kind}`;
  const text = document.createElement("div");
  const strong = document.createElement("strong");
  strong.textContent = title;
  text.append(strong, document.createTextNode(detail || ""));
  if (code) {
    const c = document.createElement("code");
    c.textContent = code;
    text.append(" ", c);
  }
  const close = button("×", "ghost small icon", () => box.remove());
  close.setAttribute("aria-label", "Dismiss");
  box.append(text, close);
  $("#alerts").append(box);
  setTimeout(() => box.remove(), kind === "info" ? 4000 : 12000);
}

function showError(error, title = "Something went wrong") {
  alertBox("error", title, error.message, error.code);
  if (error.status === 401) openKeyDialog();
}
const notify = (text) => alertBox("info", text, "");

function errorBlock(error, title) {
  const p = document.createElement("p");
  p.className = "error-text";
  p.textContent = `${title}: ${error.message}`;
  if (error.code) {
    const c = document.createElement("code");
    c.textContent = error.code;
    p.append(" ", c);
  }
  return p;
}

// ---------- Small DOM helpers ----------

function button(text, className, onClick) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = className;
  b.textContent = text;
  b.addEventListener("click", onClick);
  return b;
}

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  node.append(...children);
  return node;
}

function bytes(n) {
  if (n == null) return "–";
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} kB`;
  return `${(n / 1024 / 1024).toFixed(2)} MB`;
}

function definitions(dl, pairs) {
  dl.replaceChildren(...pairs.filter(([, v]) => v !== undefined && v !== null).map(([term, value]) => {
    const dd = el("dd");
    dd.append(value instanceof Node ? value : String(value));
    return el("div", {}, el("dt", { text: term }), dd);
  }));
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
    notify("Copied");
  } catch {
    window.prompt("Copy this:", text); // clipboard needs a secure context; this always works
  }
}

function confirmDialog(text) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.showModal();
  $("#confirm-cancel").focus();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }));
}

function openKeyDialog() {
  const dialog = $("#key-dialog");
  if (dialog.open) return;
  $("#key-input").value = sessionStorage.getItem(KEY) || "";
  dialog.showModal();
}

async function deleteImage(id) {
  if (!(await confirmDialog(`Delete image ${id.slice(0, 12)}…? Its variants are deleted too. This cannot be undone.`))) {
    return false;
  }
  try {
    await api(`/${id}`, { method: "DELETE" });
    notify("Deleted");
    return true;
  } catch (error) {
    showError(error, "Could not delete");
    return false;
  }
}

// ---------- Gallery ----------

function gallery(root) {
  const grid = $("#grid", root), more = $("#more", root), selection = new Set();
  let next = null, loading = false, finished = false;

  const ops = $(".ops", root);
  for (const op of ABOUT.operations) {
    const box = el("input", { type: "checkbox", value: op });
    box.checked = op === "grayscale";
    ops.append(el("label", {}, box, op));
  }
  const submit = $("#submit-job", root);
  if (!ABOUT.batch_jobs) {
    submit.disabled = true;
    submit.title = "Batch jobs are off on this deployment";
  }

  function updateSelection() {
    $("#selection", root).hidden = selection.size === 0;
    $("#selection-count", root).textContent = `${selection.size} selected`;
  }

  function card(item) {
    const id = item.image_id, short = id.slice(0, 10);
    const img = el("img", { alt: `${item.format} image ${short}, ${item.width}×${item.height}`, loading: "lazy" });
    img.addEventListener("error", () => img.replaceWith(el("span", { class: "muted small-text", text: "no preview" })), { once: true });
    const pick = el("input", { type: "checkbox", "aria-label": `Select image ${short}` });
    pick.addEventListener("change", () => {
      pick.checked ? selection.add(id) : selection.delete(id);
      li.classList.toggle("selected", pick.checked);
      updateSelection();
    });
    const remove = button("Delete", "ghost small", async () => {
      if (!(await deleteImage(id))) return;
      selection.delete(id);
      updateSelection();
      li.classList.add("leaving");
      setTimeout(() => { li.remove(); emptyState(); }, 250);
    });
    remove.setAttribute("aria-label", `Delete image ${short}`);
    const thumb = el("a", { class: "thumb", href: `#/${id}`, "aria-label": `Open image ${short}` }, img);
    if (item.dominant_color) thumb.style.background = item.dominant_color; // shown until the thumbnail arrives
    const li = el("li", { class: "card", "data-id": id },
      thumb,
      el("label", { class: "pick" }, pick),
      el("div", { class: "info" }, el("span", { text: `${item.format} · ${item.width}×${item.height} · ${bytes(item.bytes)}` }),
        remove));
    return [li, img];
  }

  async function addCards(items, atTop) {
    const fresh = items.filter((item) => !grid.querySelector(`[data-id="${item.image_id}"]`));
    if (!fresh.length) return;
    const built = fresh.map(card);
    const urls = await imageUrls(fresh.map((item) => thumbPath(item.image_id)));
    built.forEach(([, img], i) => { img.src = urls[i]; });
    if (atTop) grid.prepend(...built.map(([li]) => li));
    else grid.append(...built.map(([li]) => li));
    emptyState();
  }

  function emptyState() {
    $("#gallery-empty", root).hidden = grid.children.length > 0 || !finished;
  }

  async function loadMore() {
    if (loading || finished) return;
    loading = true;
    try {
      const page = await api(`/images?limit=24${next ? `&after=${next}` : ""}`);
      next = page.next;
      finished = !next;
      await addCards(page.items, false);
    } catch (error) {
      finished = true;
      showError(error, "Could not list the images");
    } finally {
      loading = false;
      emptyState();
    }
    if (!finished && more.getBoundingClientRect().top < innerHeight + 600) loadMore(); // screen not yet full
  }

  function upload(file) {
    const name = el("span", { text: file.name || "pasted image" });
    const progress = el("progress", { max: "1", value: "0", "aria-label": `Uploading ${file.name || "pasted image"}` });
    const state = el("span", { class: "state", text: "0 %" });
    $("#uploads", root).append(el("li", {}, name, progress, state));
    const xhr = new XMLHttpRequest();
    xhr.open("POST", href("/upload_file"));
    for (const [k, v] of Object.entries(authHeaders())) xhr.setRequestHeader(k, v);
    xhr.upload.addEventListener("progress", (e) => {
      if (e.lengthComputable) {
        progress.value = e.loaded / e.total;
        state.textContent = `${Math.round((100 * e.loaded) / e.total)} %`;
      }
    });
    xhr.addEventListener("load", async () => {
      progress.value = 1;
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
      if (xhr.status === 201 && body) {
        state.textContent = "Stored";
        state.className = "state done";
        await addCards([body], true).catch((error) => showError(error, "Could not show the new image"));
      } else {
        const error = new ApiFailure(xhr.status, body?.error?.code || `http_${xhr.status}`,
          body?.error?.message || xhr.statusText || "upload failed");
        state.textContent = error.message;
        state.className = "state failed";
        showError(error, `Could not upload ${file.name || "the image"}`);
      }
    });
    xhr.addEventListener("error", () => {
      state.textContent = "The service did not answer";
      state.className = "state failed";
    });
    const form = new FormData();
    form.append("image", file, file.name || "pasted");
    xhr.send(form);
  }
  const uploadAll = (files) => [...files].forEach(upload);

  const input = $("#file", root), drop = $("#drop", root);
  input.addEventListener("change", () => { uploadAll(input.files); input.value = ""; });
  drop.addEventListener("dragover", (e) => { e.preventDefault(); drop.classList.add("over"); });
  drop.addEventListener("dragleave", () => drop.classList.remove("over"));
  drop.addEventListener("drop", (e) => { e.preventDefault(); drop.classList.remove("over"); uploadAll(e.dataTransfer.files); });
  const paste = (e) => { if (e.clipboardData?.files.length) uploadAll(e.clipboardData.files); };
  document.addEventListener("paste", paste);

  submit.addEventListener("click", async () => {
    const operations = [...ops.querySelectorAll("input:checked")].map((b) => b.value);
    if (!operations.length) return showError(new ApiFailure(0, "", "pick at least one operation"), "Nothing to do");
    submit.disabled = true;
    try {
      const job = await api("/jobs", { method: "POST", json: { items: [...selection].map((image_id) => ({ image_id })), operations } });
      location.hash = `#/jobs/${job.job_id}`;
    } catch (error) {
      showError(error, "Could not submit the job");
    } finally {
      submit.disabled = !ABOUT.batch_jobs;
    }
  });
  $("#clear-selection", root).addEventListener("click", () => {
    selection.clear();
    grid.querySelectorAll(".card.selected").forEach((c) => { c.classList.remove("selected"); $("input", c).checked = false; });
    updateSelection();
  });

  const observer = new IntersectionObserver((entries) => entries.some((e) => e.isIntersecting) && loadMore(),
    { rootMargin: "600px" });
  observer.observe(more);
  leave = () => { observer.disconnect(); document.removeEventListener("paste", paste); };
  loadMore();
}

// ---------- Image page and pipeline playground ----------

async function imagePage(root, id) {
  $("#image-id", root).textContent = id;
  $("#copy-id", root).addEventListener("click", () => copy(id));
  $("#delete-image", root).addEventListener("click", async () => {
    if (await deleteImage(id)) location.hash = "#/";
  });
  let meta;
  try {
    meta = await api(`/${id}`);
  } catch (error) {
    root.replaceChildren(el("a", { href: "#/", class: "back", text: "← Gallery" }), errorBlock(error, "This image can't be shown"));
    return;
  }
  $("#image-title", root).textContent = `${meta.format} · ${meta.width}×${meta.height}`;
  const colour = meta.dominant_color;
  definitions($("#meta", root), [
    ["Format", meta.format], ["Dimensions", `${meta.width} × ${meta.height}`], ["Bytes", bytes(meta.bytes)],
    ["Content type", meta.content_type], ["Uploaded", new Date(meta.uploaded_at).toLocaleString()],
    ["Dominant colour", colour && el("span", {}, el("span", { class: "swatch", style: `background:${colour}` }), ` ${colour}`)],
    ["Placeholder", meta.placeholder ?? meta.blurhash ?? meta.thumbhash],
  ]);
  const original = $("#original", root);
  original.src = await imageUrl(thumbPath(id, PREVIEW).replace("&format=webp", ""));
  original.alt = `The original, ${meta.width}×${meta.height} (preview)`;

  const steps = []; // [{name, values: {param: string}}]
  const list = $("#steps", root), adder = $("#add-step-name", root);
  for (const name of Object.keys(ABOUT.steps)) adder.append(el("option", { value: name, text: name }));
  for (const f of ABOUT.formats) $("#format", root).append(el("option", { value: f, text: f }));

  function defaults(name) {
    const values = {};
    for (const [key, p] of Object.entries(ABOUT.steps[name].params)) {
      values[key] = p.default ?? (p.type === "choice" && ABOUT.steps[name].required.includes(key) ? p.choices[0] : "");
    }
    return values;
  }

  function field(step, index, key, p) {
    const required = ABOUT.steps[step.name].required.includes(key);
    const id_ = `step-${index}-${key}`;
    const oneOf = ABOUT.steps[step.name].one_of;
    const hint = required ? "required" : oneOf.includes(key) ? `${oneOf.join(" or ")}` : "optional";
    let input;
    if (p.type === "str") {
      input = el("input", { id: id_, type: "text", pattern: p.pattern, placeholder: required ? "required" : p.default,
        spellcheck: "false", autocomplete: "off" });
    } else if (p.type === "choice") {
      input = el("select", { id: id_ });
      if (!required && p.default == null) input.append(el("option", { value: "", text: "—" }));
      for (const c of p.choices) input.append(el("option", { value: c, text: c }));
    } else {
      input = el("input", { id: id_, type: "number", inputmode: p.type === "int" ? "numeric" : "decimal",
        step: p.type === "int" ? "1" : "any", min: p.min, max: p.max, placeholder: hint });
    }
    input.value = step.values[key] ?? "";
    if (required) input.required = true;
    input.addEventListener("input", () => { step.values[key] = input.value; showUrl(); });
    return el("label", { for: id_ }, `${key}${required ? " *" : ""}`, input);
  }

  function drawSteps() {
    $("#no-steps", root).hidden = steps.length > 0;
    list.replaceChildren(...steps.map((step, i) => {
      const n = i + 1;
      const kind = el("select", { "aria-label": `Step ${n} operation` });
      for (const name of Object.keys(ABOUT.steps)) kind.append(el("option", { value: name, text: name }));
      kind.value = step.name;
      kind.addEventListener("change", () => { step.name = kind.value; step.values = defaults(step.name); drawSteps(); });
      const move = (to) => { steps.splice(to, 0, steps.splice(i, 1)[0]); drawSteps(); };
      const up = button("↑", "ghost small icon", () => move(i - 1));
      const down = button("↓", "ghost small icon", () => move(i + 1));
      const remove = button("×", "ghost small icon", () => { steps.splice(i, 1); drawSteps(); });
      up.disabled = i === 0;
      down.disabled = i === steps.length - 1;
      up.setAttribute("aria-label", `Move step ${n} up`);
      down.setAttribute("aria-label", `Move step ${n} down`);
      remove.setAttribute("aria-label", `Remove step ${n}`);
      const params = Object.entries(ABOUT.steps[step.name].params).map(([key, p]) => field(step, i, key, p));
      return el("li", { class: "step", "data-step": step.name }, el("div", { class: "step-head" }, kind, up, down, remove),
        el("div", { class: "params" }, ...params));
    }));
    $("#add-step", root).disabled = steps.length >= ABOUT.max_steps;
    showUrl();
  }

  function pipelinePath() {
    const given = (s, k, v) => v !== "" && v != null && String(v) !== String(ABOUT.steps[s.name].params[k].default);
    const ops = steps.map((s) => [s.name, ...Object.entries(s.values).filter(([k, v]) => given(s, k, v))
      .map(([k, v]) => `${k}=${v}`)].join(":")).join(","); // defaults left out: the server fills them in
    const format = $("#format", root).value, quality = $("#quality", root).value;
    return `/${id}/process?ops=${queryValue(ops)}${format ? `&format=${format}` : ""}${quality ? `&quality=${queryValue(quality)}` : ""}`;
  }
  const showUrl = () => { $("#url", root).value = new URL(href(pipelinePath()), location.href).href; };

  $("#add-step", root).addEventListener("click", () => {
    steps.push({ name: adder.value, values: defaults(adder.value) });
    drawSteps();
    list.lastElementChild?.querySelector("input, select:not([aria-label])")?.focus();
  });
  $("#format", root).addEventListener("change", showUrl);
  $("#quality", root).addEventListener("input", showUrl);
  $("#copy-url", root).addEventListener("click", () => copy($("#url", root).value));

  const result = $("#result", root), stats = $("#result-stats", root), frame = $("#result-frame", root);
  let objectUrl = null;
  $("#pipeline", root).addEventListener("submit", async (e) => {
    e.preventDefault();
    const render = $("#render", root);
    render.disabled = true;
    render.textContent = "Rendering…";
    frame.querySelector(".error-text")?.remove();
    try {
      const url = await imageUrl(pipelinePath());
      $("#url", root).value = new URL(url, location.href).href;
      const started = performance.now();
      const response = await fetch(url, { cache: "no-store" });
      if (!response.ok) throw await failure(response);
      const blob = await response.blob();
      const took = performance.now() - started;
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      objectUrl = URL.createObjectURL(blob);
      await new Promise((resolve, reject) => {
        result.onload = resolve;
        result.onerror = () => reject(new ApiFailure(0, "", "the browser could not show this format"));
        result.src = objectUrl;
      });
      result.hidden = false;
      $("#result-empty", root).hidden = true;
      result.alt = `The result of ${steps.map((s) => s.name).join(", ") || "re-encoding"}, ${result.naturalWidth}×${result.naturalHeight}`;
      definitions(stats, [
        ["Size", `${result.naturalWidth}×${result.naturalHeight}`], ["Bytes", bytes(blob.size)],
        ["Type", response.headers.get("content-type")], ["Time", `${took.toFixed(0)} ms`],
        ["X-Cache", response.headers.get("x-cache") || "–"], ["X-Rendered-By", response.headers.get("x-rendered-by") || "–"],
      ]);
      showCompare(objectUrl);
      setTimeout(loadVariants, 700); // a new variant is stored just after it is answered
    } catch (error) {
      result.hidden = true;
      $("#result-empty", root).hidden = true;
      definitions(stats, []);
      frame.append(errorBlock(error, "Could not render"));
    } finally {
      render.disabled = false;
      render.textContent = "Render";
    }
  });

  function showCompare(after) {
    $("#compare", root).hidden = false;
    const before = $("#compare-before", root);
    before.onload = () => { // at most 480 px high, whatever the aspect
      $("#compare-box", root).style.maxWidth = `${Math.min(760, (480 * before.naturalWidth) / before.naturalHeight)}px`;
    };
    before.src = original.src;
    $("#compare-after-img", root).src = after;
  }
  const range = $("#compare-range", root);
  range.addEventListener("input", () => {
    $("#compare-after", root).style.clipPath = `inset(0 0 0 ${range.value}%)`;
    $("#compare-line", root).style.left = `${range.value}%`;
  });

  async function loadVariants() {
    const body = $("#variants tbody", root);
    try {
      const { items } = await api(`/images/${id}/variants`);
      const urls = await imageUrls(items.map((v) => v.url));
      body.replaceChildren(...items.map((v, i) => el("tr", {},
        el("td", {}, el("a", { href: urls[i], target: "_blank", rel: "noopener", text: v.key.slice(id.length + 1) })),
        el("td", { text: v.format ?? "–" }), el("td", { text: v.width ? `${v.width}×${v.height}` : "–" }),
        el("td", { text: bytes(v.bytes) }))));
      if (!items.length) body.replaceChildren(el("tr", {}, el("td", { colspan: "4", class: "muted", text: "None yet." })));
    } catch (error) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: "4" }, errorBlock(error, "Could not list the variants"))));
    }
  }
  drawSteps();
  loadVariants();
  leave = () => { if (objectUrl) URL.revokeObjectURL(objectUrl); };
}

// ---------- Jobs ----------

const badge = (state) => el("span", { class: `badge ${state}`, text: state });
const finishedState = (state) => state === "done" || state === "failed";

function progressCell(progress) {
  const handled = progress.done + progress.failed;
  return el("td", {}, el("progress", { max: String(progress.total || 1), value: String(handled),
    "aria-label": `${handled} of ${progress.total}` }), ` ${handled}/${progress.total}`);
}

function poll(load, every) {
  let timer = null, stopped = false;
  const tick = async () => {
    const again = await load();
    if (again && !stopped) timer = setTimeout(tick, every);
  };
  tick();
  return () => { stopped = true; clearTimeout(timer); };
}

function jobsPage(root) {
  const body = $("#jobs tbody", root);
  leave = poll(async () => {
    try {
      const { items } = await api("/jobs");
      $("#jobs-empty", root).hidden = items.length > 0;
      body.replaceChildren(...items.map((job) => el("tr", {},
        el("td", {}, el("a", { href: `#/jobs/${encodeURIComponent(job.job_id)}`, text: job.job_id })),
        el("td", {}, badge(job.state)), progressCell(job.progress), el("td", { text: job.operations.join(", ") }),
        el("td", { text: job.created_at ? new Date(job.created_at).toLocaleString() : "–" }))));
      return items.some((job) => !finishedState(job.state));
    } catch (error) {
      body.replaceChildren(el("tr", {}, el("td", { colspan: "5" }, errorBlock(error, "Could not list the jobs"))));
      return true;
    }
  }, 2000);
}

const ROWS_SHOWN = 200;
function jobPage(root, jobId) {
  $("#job-id", root).textContent = jobId;
  const table = $("#job-items", root);
  let thumbs = null;
  leave = poll(async () => {
    try {
      return await showJob();
    } catch (error) {
      $("#job-error", root).hidden = false;
      $("#job-error", root).textContent = `${error.message} (${error.code})`;
      return error.status !== 404;
    }
  }, 700);

  async function showJob() {
    const job = await api(`/jobs/${encodeURIComponent(jobId)}`);
    $("#job-error", root).hidden = !job.error;
    $("#job-error", root).textContent = job.error || "";
    $("#job-state", root).replaceWith(Object.assign(badge(job.state), { id: "job-state" }));
    const { total, done, failed } = job.progress;
    $("#job-progress", root).max = total || 1;
    $("#job-progress", root).value = done + failed;
    $("#job-count", root).textContent = `${done} done, ${failed} failed, of ${total}`;
    const items = job.items.slice(0, ROWS_SHOWN);
    thumbs ??= await imageUrls(items.map((item) => thumbPath(item.image_id)));
    const resultPath = (id, op) => (ABOUT.operations.includes(op) ? `/${id}/${op}` : `/${id}/process?${op}`);
    const links = await imageUrls(items.flatMap((item) => job.operations.map((op) => resultPath(item.image_id, op))));
    $("thead tr", table).replaceChildren(el("th", { scope: "col", text: "Image" }),
      ...job.operations.map((op) => el("th", { scope: "col", text: op })));
    $("tbody", table).replaceChildren(...items.map((item, i) => el("tr", {},
      el("td", {}, el("a", { href: `#/${item.image_id}`, "aria-label": `Open image ${item.image_id.slice(0, 10)}` },
        el("img", { src: thumbs[i], alt: `Image ${item.image_id.slice(0, 10)}` }))),
      ...job.operations.map((op, j) => {
        const r = item.results?.[op];
        if (!r) return el("td", { class: "muted", text: "pending" });
        if (r.status !== "ok") return el("td", { class: "error-text", text: r.error || "failed" });
        return el("td", {}, badge("ok"), " ", el("a", { href: links[i * job.operations.length + j], target: "_blank",
          rel: "noopener", text: `open (${bytes(r.bytes)})` }));
      }))));
    if (job.items.length > ROWS_SHOWN) {
      $("tbody", table).append(el("tr", {}, el("td", { colspan: String(job.operations.length + 1), class: "muted",
        text: `and ${job.items.length - ROWS_SHOWN} more items` })));
    }
    return !finishedState(job.state);
  }
}

// ---------- Routing ----------

const ROUTES = [
  [/^#?\/?$/, "gallery", (root) => gallery(root)],
  [/^#\/jobs\/?$/, "jobs", (root) => jobsPage(root)],
  [/^#\/jobs\/(.+)$/, "jobs", (root, m) => jobPage(root, decodeURIComponent(m[1]))],
  [/^#\/([0-9a-f]{64})$/, "gallery", (root, m) => imagePage(root, m[1])],
];
const TEMPLATES = { gallery: "gallery-template", jobs: "jobs-template" };

async function route(focus = true) {
  leave();
  leave = () => {};
  const view = $("#view");
  const hash = location.hash || "#/";
  const found = ROUTES.find(([pattern]) => pattern.test(hash));
  document.querySelectorAll("nav a[data-nav]").forEach((a) => a.removeAttribute("aria-current"));
  if (!found) {
    view.replaceChildren(el("h1", { text: "Not found" }), el("p", {}, el("a", { href: "#/", text: "Back to the gallery" })));
    return;
  }
  const [pattern, nav, show] = found;
  const match = hash.match(pattern);
  const template = /^#\/jobs\/.+/.test(hash) ? "job-template" : /^#\/[0-9a-f]{64}$/.test(hash) ? "image-template" : TEMPLATES[nav];
  const root = $(`#${template}`).content.firstElementChild.cloneNode(true);
  view.replaceChildren(root);
  $(`nav a[data-nav="${nav}"]`)?.setAttribute("aria-current", "page");
  if (focus) view.focus({ preventScroll: true });
  window.scrollTo(0, 0);
  try {
    await show(root, match);
  } catch (error) { // e.g. signed URLs refused for want of an API key: say so, never a blank area
    view.append(errorBlock(error, "This page could not be shown"));
    if (error.status === 401) openKeyDialog();
  }
}

async function start() {
  try {
    ABOUT = await api("/about");
  } catch (error) {
    $("#view").replaceChildren(errorBlock(error, "The service did not answer"),
      button("Try again", "", () => start()));
    return;
  }
  const keyButton = $("#key-button");
  keyButton.hidden = !(ABOUT.api_key_required || ABOUT.signed_urls);
  const label = () => { keyButton.textContent = sessionStorage.getItem(KEY) ? "API key ✓" : "API key"; };
  label();
  keyButton.addEventListener("click", openKeyDialog);
  $("#key-dialog").addEventListener("close", () => {
    if ($("#key-dialog").returnValue !== "ok") return;
    const key = $("#key-input").value.trim();
    key ? sessionStorage.setItem(KEY, key) : sessionStorage.removeItem(KEY);
    signedCache.clear();
    label();
    route(false);
  });
  window.addEventListener("hashchange", () => route());
  route(false);
}

start();
