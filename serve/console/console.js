// Operator console: live scans pushed by the service, alarms, review, image tools, history.
// No external resources: everything is served by the service itself.
"use strict";

const S = {
  key: sessionStorage.getItem("xfd_key") || "",
  lane: sessionStorage.getItem("xfd_lane") || "",
  model: null, colors: {}, classes: [],
  scan: null,          // the scan on screen
  img: null,           // its ImageBitmap
  boxes: [],           // editable boxes [{label, x1,y1,x2,y2, confidence, alarm, edited}]
  sel: -1, drawing: false, drag: null,
  view: { scale: 1, ox: 0, oy: 0 },
  queue: [], history: [], hOffset: 0,
  processed: null,     // canvas with filters applied
  streamAbort: null,
};
const $ = (id) => document.getElementById(id);

// ------------------------------------------------------------------ API
async function api(path, opts = {}) {
  const r = await fetch(path, { ...opts, headers: { ...(opts.headers || {}), Authorization: "Bearer " + S.key } });
  if (!r.ok) {
    let msg = r.status + "";
    try { const j = await r.json(); msg = j.error ? j.error.message : msg; } catch (e) { /* not json */ }
    const err = new Error(msg); err.status = r.status; throw err;
  }
  return r;
}

// ------------------------------------------------------------------ sign in
async function signIn(key) {
  S.key = key;
  try {
    const m = await (await api("/v1/models")).json();
    await api("/v1/scans?limit=1");  // operator rights
    S.model = m.active; S.colors = m.active.colors || {}; S.classes = m.active.classes;
    sessionStorage.setItem("xfd_key", key);
    $("signin").hidden = true; $("app").hidden = false;
    showModel(S.model, S.model.backend);
    $("draw-label").innerHTML = S.classes.map((c) => `<option>${c}</option>`).join("");
    await loadLanes(); await refreshQueue(); connect(); watchHealth();
    if (S.queue.length) openScan(S.queue[0].scan_id);
  } catch (e) {
    sessionStorage.removeItem("xfd_key");
    $("signin").hidden = false; $("app").hidden = true;
    $("signin-error").textContent = e.status === 401 ? "Wrong or revoked key." :
      e.status === 403 ? "This key may not use the console (operator key needed)." :
      e.status === 503 ? "The service is starting; try again in a moment." : "Cannot reach the service: " + e.message;
  }
}

async function loadLanes() {
  const j = await (await api("/v1/scans?limit=200")).json();
  const lanes = [...new Set(j.items.map((s) => s.lane).filter(Boolean))].sort();
  if (S.lane && !lanes.includes(S.lane)) lanes.push(S.lane);
  $("lane").innerHTML = `<option value="">all lanes</option>` + lanes.map((l) => `<option${l === S.lane ? " selected" : ""}>${l}</option>`).join("");
}

// ------------------------------------------------------------------ live push (SSE over fetch, with the key header)
async function connect() {
  if (S.streamAbort) S.streamAbort.abort();
  const ctl = new AbortController(); S.streamAbort = ctl;
  let delay = 1000;
  while (!ctl.signal.aborted) {
    try {
      const r = await fetch("/v1/events" + (S.lane ? "?lane=" + encodeURIComponent(S.lane) : ""),
        { headers: { Authorization: "Bearer " + S.key }, signal: ctl.signal });
      if (r.status === 401 || r.status === 403) { signOut("Your key is no longer valid."); return; }
      if (!r.ok) throw new Error("status " + r.status);
      setConn(true); delay = 1000;
      const reader = r.body.getReader(); const dec = new TextDecoder(); let buf = "";
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const chunk = buf.slice(0, i); buf = buf.slice(i + 2);
          const ev = /^event: (.*)$/m.exec(chunk), data = /^data: (.*)$/m.exec(chunk);
          if (ev && data) onEvent(ev[1], JSON.parse(data[1]));
        }
      }
      throw new Error("stream closed");
    } catch (e) {
      if (ctl.signal.aborted) return;
      setConn(false);
      await new Promise((res) => setTimeout(res, delay));
      delay = Math.min(delay * 2, 10000);
      if (!ctl.signal.aborted) { refreshQueue().catch(() => {}); }
    }
  }
}
function showModel(m, backend) { $("model").textContent = `${m.name} ${m.version} · ${backend}`; }
// the service's readiness, every 5 s: a model that failed to load or a full disk means scans arriving
// now are not screened, which the belt must see without waiting for a scan to be refused
async function watchHealth() {
  if (S.healthTimer) return;
  const check = async () => {
    try {
      const r = await fetch("/readyz");
      const j = await r.json();
      if (r.ok) {
        $("health").hidden = true;
        showModel(j.model, j.backend);  // after a model swap too
      } else {
        $("health-text").textContent = `${j.error.message} (${j.error.code})`;
        $("health").hidden = false;
      }
    } catch (e) { /* unreachable: the connection badge says so */ }
  };
  S.healthTimer = setInterval(check, 5000); check();
}
function setConn(ok) {
  $("conn").className = "conn " + (ok ? "ok" : "bad");
  $("conn").textContent = ok ? "connected" : "service unreachable: reconnecting…";
}

function onEvent(type, scan) {
  if (type === "scan" && scan.parcel && S.scan && S.scan.parcel === scan.parcel && S.scan.scan_id !== scan.scan_id) {
    renderViews(S.scan);  // another view of the parcel on screen has come in
  }
  if (type === "scan") {
    if (scan.verdict === "alarm") {
      S.queue.unshift({ scan_id: scan.scan_id, lane: scan.lane, reasons: scan.reasons, created: scan.created });
      renderQueue(); beep();
      showScan(scan);
    } else if (!S.scan || S.scan.review.state !== "pending" || S.scan.verdict !== "alarm") {
      showScan(scan);  // clean scans pass quietly, never replacing an unreviewed alarm
    } else {
      $("status-line").textContent = `Clear scan ${short(scan.scan_id)} passed (lane ${scan.lane || "-"})`;
    }
  } else if (type === "review") {
    S.queue = S.queue.filter((q) => q.scan_id !== scan.scan_id); renderQueue();
  } else if (type === "refused") {
    // a scan came in and could not be analysed: its parcel was not screened (the scan on screen stays)
    const at = new Date(scan.created * 1000).toLocaleTimeString();
    $("refused-text").textContent = `${at} · lane ${scan.lane || "-"}` +
      (scan.parcel ? ` · parcel ${scan.parcel}` : "") + ` · ${scan.message} (${scan.code})`;
    $("refused").hidden = false; beep();
  }
}

// ------------------------------------------------------------------ showing a scan
const short = (id) => id.slice(0, 8);
async function openScan(id) {
  try { showScan(await (await api("/v1/scans/" + id)).json()); } catch (e) { $("status-line").textContent = "Cannot open scan: " + e.message; }
}
async function showScan(scan) {
  if (!scan.review) scan.review = { state: "pending" };
  S.scan = scan; S.sel = -1; S.drawing = false;
  S.boxes = scan.detections.filter((d) => d.alarm || d.confidence >= 0.25).map((d) => ({ label: d.label, confidence: d.confidence, alarm: d.alarm, ...d.box }));
  if (scan.review.boxes) S.boxes = scan.review.boxes.map((b) => ({ label: b.label, confidence: 1, alarm: true, edited: true, ...b.box }));
  const alarm = scan.verdict === "alarm";
  $("banner").hidden = !(alarm && scan.review.state === "pending");
  $("banner-reasons").textContent = (scan.reasons || []).join(" · ");
  $("viewer").className = "viewer " + scan.verdict;
  const st = $("status-line");
  st.className = "status-line " + scan.verdict;
  st.textContent = `${alarm ? "ALARM" : "CLEAR"} · scan ${short(scan.scan_id)} · lane ${scan.lane || "-"} · ` +
    (scan.parcel ? `parcel ${scan.parcel}${scan.view ? " (" + scan.view + " view)" : ""} · ` : "") +
    `${new Date((scan.created || Date.now() / 1000) * 1000).toLocaleTimeString()}` +
    (scan.review.state !== "pending" ? ` · reviewed: ${scan.review.state.replace("_", " ")}` : "");
  $("scan-info").textContent = `Scan ${short(scan.scan_id)}: ${scan.image.width}×${scan.image.height}px, ${scan.detections.length} detection(s)` +
    (scan.network === "grey" ? " · grey scan, read by the grey network" : "");
  $("btn-confirm").disabled = $("btn-false").disabled = false;
  $("note").value = scan.review.note || "";
  $("review-msg").textContent = "";
  renderDetList();
  renderQueue();
  renderViews(scan);
  $("missing").hidden = true;
  try {
    const blob = await (await api(`/v1/scans/${scan.scan_id}/image?format=png`)).blob();
    S.img = await createImageBitmap(blob);
  } catch (e) {
    S.img = null; $("missing").hidden = false;
    $("missing").textContent = e.status === 404 ? "Image missing for this scan" :
      e.status === 410 ? "Image deleted under the retention policy (the record is kept)" : "Cannot load image: " + e.message;
  }
  fitView(); process(); draw();
}

// a dual-view scanner's parcel: every view of it, one click away (the parcel alarms when any view does)
async function renderViews(scan) {
  const el = $("views");
  if (!scan.parcel) { el.hidden = true; el.innerHTML = ""; return; }
  try {
    const p = await (await api("/v1/parcels/" + encodeURIComponent(scan.parcel))).json();
    if (S.scan !== scan) return;  // another scan was opened meanwhile
    el.innerHTML = `<span class="muted">Parcel ${p.parcel}: ${p.verdict.toUpperCase()}</span> ` + p.views.map((v) =>
      `<button class="view-btn ${v.verdict}${v.scan_id === scan.scan_id ? " current" : ""}" data-id="${v.scan_id}">` +
      `${v.view || short(v.scan_id)} · ${v.verdict}${v.review !== "pending" ? " · " + v.review.replace("_", " ") : ""}</button>`).join(" ");
    el.querySelectorAll("button").forEach((b) => b.addEventListener("click", () => openScan(b.dataset.id)));
    el.hidden = false;
  } catch (e) { el.hidden = true; }
}

function renderDetList() {
  $("det-list").innerHTML = S.boxes.map((b, i) =>
    `<li style="border-color:${S.colors[b.label] || "#f33"}" data-i="${i}" class="${i === S.sel ? "sel" : ""}">` +
    `<b>${b.label}</b> ${b.edited ? "(operator)" : (b.confidence * 100).toFixed(0) + "%"}${b.alarm ? "" : " · below threshold"}</li>`).join("");
}

// ------------------------------------------------------------------ image processing (screener tools)
function process() {
  if (!S.img) { S.processed = null; return; }
  const c = document.createElement("canvas"); c.width = S.img.width; c.height = S.img.height;
  const ctx = c.getContext("2d");
  ctx.filter = `brightness(${$("bright").value}%) contrast(${$("contrast").value}%)` + ($("negative").checked ? " invert(1)" : "");
  ctx.drawImage(S.img, 0, 0);
  ctx.filter = "none";
  const mode = $("mode").value, edges = $("edges").checked;
  if (mode !== "all" || edges) {
    const id = ctx.getImageData(0, 0, c.width, c.height), p = id.data;
    if (mode !== "all") {
      for (let i = 0; i < p.length; i += 4) {
        const r = p[i], g = p[i + 1], b = p[i + 2], mx = Math.max(r, g, b), mn = Math.min(r, g, b);
        if (mx - mn < 18) continue;  // grey: keep (air, or grayscale scans)
        let h = 0;
        if (mx === r) h = ((g - b) / (mx - mn)) * 60; else if (mx === g) h = (2 + (b - r) / (mx - mn)) * 60; else h = (4 + (r - g) / (mx - mn)) * 60;
        if (h < 0) h += 360;
        const organic = h < 60 || h > 330, metal = h > 170 && h < 280;
        if ((mode === "organic" && !organic) || (mode === "metal" && !metal)) { p[i] = p[i + 1] = p[i + 2] = 255; }
      }
    }
    if (edges) {
      const w = c.width, h = c.height, src = new Uint8ClampedArray(p);
      for (let y = 1; y < h - 1; y++) for (let x = 1; x < w - 1; x++) {
        const o = (y * w + x) * 4;
        for (let k = 0; k < 3; k++) {
          const v = 5 * src[o + k] - src[o - 4 + k] - src[o + 4 + k] - src[o - w * 4 + k] - src[o + w * 4 + k];
          p[o + k] = v < 0 ? 0 : v > 255 ? 255 : v;
        }
      }
    }
    ctx.putImageData(id, 0, 0);
  }
  S.processed = c;
}

// ------------------------------------------------------------------ drawing, zoom, pan, box editing
function fitView() {
  const cv = $("canvas"), r = cv.getBoundingClientRect();
  cv.width = Math.max(1, r.width * devicePixelRatio); cv.height = Math.max(1, r.height * devicePixelRatio);
  if (!S.img) return;
  const s = Math.min(cv.width / S.img.width, cv.height / S.img.height);
  S.view = { scale: s, ox: (cv.width - S.img.width * s) / 2, oy: (cv.height - S.img.height * s) / 2 };
}
function draw() {
  const cv = $("canvas"), ctx = cv.getContext("2d");
  ctx.setTransform(1, 0, 0, 1, 0, 0);
  ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, cv.width, cv.height);
  if (!S.processed) return;
  const v = S.view;
  ctx.setTransform(v.scale, 0, 0, v.scale, v.ox, v.oy);
  ctx.imageSmoothingEnabled = v.scale < 2;
  ctx.drawImage(S.processed, 0, 0);
  if (!$("boxes").checked) return;
  const lw = 3 * devicePixelRatio / v.scale, fs = 16 * devicePixelRatio / v.scale;
  ctx.font = `bold ${fs}px "DejaVu Sans", sans-serif`;
  S.boxes.forEach((b, i) => {
    const col = S.colors[b.label] || "#ff2d2d";
    ctx.lineWidth = (b.alarm ? lw : lw / 2) * (i === S.sel ? 1.8 : 1);
    ctx.setLineDash(b.alarm ? [] : [lw * 3, lw * 2]);
    ctx.strokeStyle = "#000"; ctx.strokeRect(b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1);
    ctx.strokeStyle = col; ctx.lineWidth *= 0.6; ctx.strokeRect(b.x1, b.y1, b.x2 - b.x1, b.y2 - b.y1);
    ctx.setLineDash([]);
    const t = `${b.label} ${b.edited ? "" : Math.round(b.confidence * 100) + "%"}`;
    const tw = ctx.measureText(t).width;
    ctx.fillStyle = col; ctx.fillRect(b.x1, b.y1 - fs * 1.25, tw + fs * 0.5, fs * 1.25);
    ctx.fillStyle = "#000"; ctx.fillText(t, b.x1 + fs * 0.25, b.y1 - fs * 0.3);
    if (i === S.sel) { ctx.fillStyle = col; ctx.fillRect(b.x2 - lw * 3, b.y2 - lw * 3, lw * 6, lw * 6); }
  });
}
function toImage(e) {
  const r = $("canvas").getBoundingClientRect(), v = S.view;
  const x = (e.clientX - r.left) * devicePixelRatio, y = (e.clientY - r.top) * devicePixelRatio;
  return { x: (x - v.ox) / v.scale, y: (y - v.oy) / v.scale, sx: x, sy: y };
}
function hit(p) {
  const tol = 8 * devicePixelRatio / S.view.scale;
  for (let i = S.boxes.length - 1; i >= 0; i--) {
    const b = S.boxes[i];
    if (Math.abs(p.x - b.x2) < tol && Math.abs(p.y - b.y2) < tol) return { i, corner: true };
    if (p.x >= b.x1 && p.x <= b.x2 && p.y >= b.y1 && p.y <= b.y2) return { i, corner: false };
  }
  return null;
}
function clampBox(b) {
  if (!S.img) return;
  const W = S.img.width, H = S.img.height;
  b.x1 = Math.max(0, Math.min(b.x1, W - 1)); b.x2 = Math.max(b.x1 + 1, Math.min(b.x2, W));
  b.y1 = Math.max(0, Math.min(b.y1, H - 1)); b.y2 = Math.max(b.y1 + 1, Math.min(b.y2, H));
}
function setupCanvas() {
  const cv = $("canvas");
  cv.addEventListener("mousedown", (e) => {
    const p = toImage(e);
    if (S.drawing) {
      const b = { label: $("draw-label").value, confidence: 1, alarm: true, edited: true, x1: p.x, y1: p.y, x2: p.x + 1, y2: p.y + 1 };
      S.boxes.push(b); S.sel = S.boxes.length - 1; S.drag = { mode: "new", i: S.sel, p0: p };
    } else {
      const h = $("boxes").checked ? hit(p) : null;
      if (h) { S.sel = h.i; S.drag = { mode: h.corner ? "resize" : "move", i: h.i, p0: p, b0: { ...S.boxes[h.i] } }; }
      else { S.sel = -1; S.drag = { mode: "pan", p0: p, v0: { ...S.view } }; cv.style.cursor = "grabbing"; }
    }
    $("btn-delete").disabled = S.sel < 0; renderDetList(); draw();
  });
  window.addEventListener("mousemove", (e) => {
    if (!S.drag) return;
    const p = toImage(e), d = S.drag, b = S.boxes[d.i];
    if (d.mode === "pan") { S.view.ox = d.v0.ox + (p.sx - d.p0.sx); S.view.oy = d.v0.oy + (p.sy - d.p0.sy); }
    else if (d.mode === "new") { b.x1 = Math.min(d.p0.x, p.x); b.y1 = Math.min(d.p0.y, p.y); b.x2 = Math.max(d.p0.x, p.x); b.y2 = Math.max(d.p0.y, p.y); }
    else if (d.mode === "move") { const dx = p.x - d.p0.x, dy = p.y - d.p0.y; Object.assign(b, { x1: d.b0.x1 + dx, x2: d.b0.x2 + dx, y1: d.b0.y1 + dy, y2: d.b0.y2 + dy }); b.edited = true; }
    else if (d.mode === "resize") { b.x2 = Math.max(b.x1 + 2, p.x); b.y2 = Math.max(b.y1 + 2, p.y); b.edited = true; }
    draw();
  });
  window.addEventListener("mouseup", () => {
    if (S.drag && S.drag.mode !== "pan") { clampBox(S.boxes[S.drag.i]); if (S.drag.mode === "new") setDrawing(false); renderDetList(); }
    S.drag = null; $("canvas").style.cursor = "grab"; draw();
  });
  cv.addEventListener("wheel", (e) => {
    e.preventDefault(); zoomAt(e.deltaY < 0 ? 1.2 : 1 / 1.2, toImage(e));
  }, { passive: false });
  window.addEventListener("resize", () => { fitView(); draw(); });
}
function zoomAt(f, p) {
  const v = S.view, ns = Math.min(20, Math.max(0.05, v.scale * f));
  const cx = p ? p.sx : $("canvas").width / 2, cy = p ? p.sy : $("canvas").height / 2;
  const ix = (cx - v.ox) / v.scale, iy = (cy - v.oy) / v.scale;
  S.view = { scale: ns, ox: cx - ix * ns, oy: cy - iy * ns }; draw();
}
function setDrawing(on) { S.drawing = on; $("btn-draw").classList.toggle("tab", on); $("btn-draw").classList.toggle("active", on); }

// ------------------------------------------------------------------ review
async function review(decision) {
  if (!S.scan) return;
  const body = { decision, note: $("note").value || null };
  if (S.boxes.some((b) => b.edited) || decision === "confirmed") {
    body.boxes = S.boxes.filter((b) => b.alarm || b.edited).map((b) => ({ label: b.label, box: { x1: b.x1, y1: b.y1, x2: b.x2, y2: b.y2 } }));
  }
  try {
    const r = await (await api(`/v1/scans/${S.scan.scan_id}/review`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify(body) })).json();
    S.scan = r;
    S.queue = S.queue.filter((q) => q.scan_id !== r.scan_id); renderQueue();
    $("banner").hidden = true;
    $("review-msg").textContent = decision === "confirmed" ? "Confirmed: send to secondary inspection." : "Marked as false alarm.";
    $("status-line").textContent += ` · reviewed: ${decision.replace("_", " ")}`;
    if (S.queue.length) setTimeout(() => openScan(S.queue[0].scan_id), 600);
  } catch (e) { $("review-msg").textContent = "Review not saved: " + e.message; }
}

// ------------------------------------------------------------------ queue and history
async function refreshQueue() {
  const q = new URLSearchParams({ verdict: "alarm", review: "pending", limit: "100" });
  if (S.lane) q.set("lane", S.lane);
  const j = await (await api("/v1/scans?" + q)).json();
  S.queue = j.items.map((s) => ({ scan_id: s.scan_id, lane: s.lane, reasons: s.reasons, created: s.created }));
  renderQueue();
}
function renderQueue() {
  $("queue-count").textContent = S.queue.length;
  $("queue").innerHTML = S.queue.map((q) => `<li data-id="${q.scan_id}" class="${S.scan && S.scan.scan_id === q.scan_id ? "sel" : ""}">` +
    `<b>${short(q.scan_id)}</b> · lane ${q.lane || "-"} · ${new Date(q.created * 1000).toLocaleTimeString()}<br><span class="muted">${(q.reasons || []).join(", ")}</span></li>`).join("");
}
async function searchHistory(more = false) {
  if (!more) { S.hOffset = 0; $("history").innerHTML = ""; }
  const q = new URLSearchParams({ limit: "40", offset: String(S.hOffset) });
  if ($("h-verdict").value) q.set("verdict", $("h-verdict").value);
  if ($("h-review").value) q.set("review", $("h-review").value);
  if ($("h-lane").value) q.set("lane", $("h-lane").value);
  if ($("h-since").value) q.set("since", String(new Date($("h-since").value).getTime() / 1000));
  try {
    const j = await (await api("/v1/scans?" + q)).json();
    $("h-total").textContent = `${j.total} scan(s)`;
    S.hOffset += j.items.length; $("h-more").hidden = j.next_offset === null;
    for (const s of j.items) {
      const d = document.createElement("div");
      d.className = "card " + s.verdict; d.dataset.id = s.scan_id;
      d.innerHTML = `<img alt="scan ${short(s.scan_id)}"><div class="meta"><b class="${s.verdict}">${s.verdict.toUpperCase()}</b> · ` +
        `${s.review.state.replace("_", " ")} · lane ${s.lane || "-"}<br>${new Date(s.created * 1000).toLocaleString()}<br>` +
        `<span class="muted">${s.reasons.join(", ") || "no threat"}</span></div>`;
      $("history").appendChild(d);
      api(`/v1/scans/${s.scan_id}/image?overlay=1`).then((r) => r.blob()).then((b) => { d.querySelector("img").src = URL.createObjectURL(b); })
        .catch((e) => { d.querySelector("img").alt = e.status === 410 ? "image deleted (retention)" : "image missing"; });
    }
  } catch (e) { $("h-total").textContent = "Search failed: " + e.message; }
}
function showView(v) {
  $("view-live").hidden = v !== "live"; $("view-history").hidden = v !== "history";
  document.querySelectorAll(".tab[data-view]").forEach((t) => t.classList.toggle("active", t.dataset.view === v));
  if (v === "history") searchHistory(); else { fitView(); draw(); }
}

// ------------------------------------------------------------------ alarm sound (generated, no files)
let audio = null;
function beep() {
  try {
    audio = audio || new AudioContext();
    [0, 0.25, 0.5].forEach((t) => {
      const o = audio.createOscillator(), g = audio.createGain();
      o.frequency.value = 880; o.type = "square"; g.gain.value = 0.08;
      o.connect(g); g.connect(audio.destination); o.start(audio.currentTime + t); o.stop(audio.currentTime + t + 0.15);
    });
  } catch (e) { /* no audio device */ }
}

function signOut(msg) {
  if (S.streamAbort) S.streamAbort.abort();
  if (S.healthTimer) { clearInterval(S.healthTimer); S.healthTimer = null; }
  sessionStorage.removeItem("xfd_key"); S.key = "";
  $("app").hidden = true; $("signin").hidden = false; $("signin-error").textContent = msg || "";
}

// ------------------------------------------------------------------ wiring
function init() {
  $("signin-form").addEventListener("submit", (e) => { e.preventDefault(); signIn($("key").value.trim()); });
  $("signout").addEventListener("click", () => signOut());
  $("refused-ok").addEventListener("click", () => { $("refused").hidden = true; });
  $("lane").addEventListener("change", async () => { S.lane = $("lane").value; sessionStorage.setItem("xfd_lane", S.lane); await refreshQueue(); connect(); });
  document.querySelectorAll(".tab[data-view]").forEach((t) => t.addEventListener("click", () => showView(t.dataset.view)));
  ["bright", "contrast", "negative", "mode", "edges"].forEach((id) => $(id).addEventListener("input", () => { process(); draw(); }));
  $("boxes").addEventListener("change", draw);
  $("zoom-reset").addEventListener("click", () => { fitView(); draw(); });
  $("btn-confirm").addEventListener("click", () => review("confirmed"));
  $("btn-false").addEventListener("click", () => review("false_alarm"));
  $("btn-draw").addEventListener("click", () => setDrawing(!S.drawing));
  $("btn-delete").addEventListener("click", () => { if (S.sel >= 0) { S.boxes.splice(S.sel, 1); S.sel = -1; renderDetList(); draw(); } });
  $("queue").addEventListener("click", (e) => { const li = e.target.closest("li"); if (li) openScan(li.dataset.id); });
  $("history").addEventListener("click", (e) => { const c = e.target.closest(".card"); if (c) { showView("live"); openScan(c.dataset.id); } });
  $("h-search").addEventListener("click", () => searchHistory());
  $("h-more").addEventListener("click", () => searchHistory(true));
  setupCanvas();
  document.addEventListener("keydown", (e) => {
    if ($("app").hidden || ["INPUT", "TEXTAREA", "SELECT"].includes(document.activeElement.tagName)) {
      if (e.key === "Escape") document.activeElement.blur();
      return;
    }
    const k = e.key.toLowerCase();
    if (k === "c") review("confirmed");
    else if (k === "f") review("false_alarm");
    else if (k === "n") { e.preventDefault(); $("note").focus(); }
    else if (k === "b") setDrawing(!S.drawing);
    else if (k === "delete" || k === "backspace") $("btn-delete").click();
    else if (k === "o") { $("boxes").checked = !$("boxes").checked; draw(); }
    else if (k === "i") { $("negative").checked = !$("negative").checked; process(); draw(); }
    else if (k === "e") { $("edges").checked = !$("edges").checked; process(); draw(); }
    else if (k === "m") { const m = $("mode"); m.selectedIndex = (m.selectedIndex + 1) % 3; process(); draw(); }
    else if (k === "+" || k === "=") zoomAt(1.25);
    else if (k === "-") zoomAt(0.8);
    else if (k === "0") { fitView(); draw(); }
    else if (k === "j" || k === "k") {
      if (!S.queue.length) return;
      const i = S.queue.findIndex((q) => S.scan && q.scan_id === S.scan.scan_id);
      const n = k === "j" ? Math.min(S.queue.length - 1, i + 1) : Math.max(0, i - 1);
      openScan(S.queue[n].scan_id);
    }
  });
  if (S.key) signIn(S.key);
}
init();
