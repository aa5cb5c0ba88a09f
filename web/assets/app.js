// The status page: renders api/status (live over api/events) and api/charts.
// Every URL is relative, so the page works under Home Assistant's ingress
// prefix. Data is put into the page with textContent only.
"use strict";

const $ = (id) => document.getElementById(id);
let status = null;
let sortKey = "level", sortDir = -1;

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "class") e.className = v; else if (k === "text") e.textContent = v; else e.setAttribute(k, v);
  }
  for (const k of kids) if (k != null) e.append(k);
  return e;
}

function ago(t) {
  if (!t) return "never";
  const s = Math.max(0, (Date.now() - Date.parse(t)) / 1000);
  if (s < 60) return Math.round(s) + " s ago";
  if (s < 3600) return Math.round(s / 60) + " min ago";
  if (s < 86400) return Math.round(s / 3600) + " h ago";
  return Math.round(s / 86400) + " d ago";
}
const num = (v, d) => (v == null ? "—" : Number(v).toFixed(d));
const pct = (v) => (v == null ? "—" : (Math.round(v * 10) / 10) + " %");
const db = (v) => (v == null ? "—" : v.toFixed(1) + " dB");

// Tabs; the location hash keeps the tab across reloads.
function showTab(name) {
  for (const b of document.querySelectorAll("#tabs button")) b.setAttribute("aria-selected", b.dataset.tab === name);
  for (const s of document.querySelectorAll("main > section")) s.hidden = s.id !== name;
  if (name === "charts") loadCharts();
  if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
}
document.addEventListener("click", (ev) => {
  const t = ev.target.closest("[data-tab],[data-goto]");
  if (t) { ev.preventDefault(); showTab(t.dataset.tab || t.dataset.goto); }
});

function stateClass(s) {
  if (s === "receiving") return "receiving";
  if (s === "wrong key" || s === "no key" || s === "silent") return "bad";
  return "wait";
}

function renderMine(ms) {
  const box = $("mine-list");
  box.replaceChildren();
  $("mine-empty").hidden = ms.length > 0;
  $("count-mine").textContent = ms.length ? ms.length : "";
  for (const m of ms) {
    const r = m.reading || {};
    const st = m.state === "silent" ? "silent for " + m.silent_minutes + " min" : m.state;
    const card = el("article", { class: "card", "data-meter": m.id },
      el("div", { class: "card-head" },
        el("h2", { text: m.name }),
        el("span", { class: "state " + stateClass(m.state), text: st })),
      el("div", { class: "sub", text: [m.id, m.model || r.model, r.manufacturer].filter(Boolean).join(" · ") }));
    if (r.total_m3 != null) card.append(el("div", { class: "big total" }, r.total_m3.toFixed(3) + " ", el("small", { text: "m³" })));
    const alarms = (r.alarms || []);
    if (alarms.length) card.append(el("div", {}, ...alarms.map((a) => el("span", { class: "alarm", text: a }))));
    const kv = el("dl", { class: "kv" });
    const row = (k, v) => { if (v != null && v !== "") kv.append(el("dt", { text: k }), el("dd", {}, v)); };
    if (r.flow_m3h != null) row("Flow", num(r.flow_m3h, 3) + " m³/h");
    if (r.target_m3 != null) row("On " + (r.target_date || "target date"), num(r.target_m3, 3) + " m³");
    const wt = [r.min_water_temperature_c, r.max_water_temperature_c].filter((v) => v != null);
    if (wt.length) row("Water", wt.join(" – ") + " °C");
    if (r.ambient_temperature_c != null) row("Ambient", r.ambient_temperature_c + " °C");
    const hist = Object.keys(r).filter((k) => k.endsWith("_duration") && r[k] !== "none")
      .map((k) => k.replace("_duration", "").replace("_", " ") + " " + r[k]);
    if (r.info_code != null) row("Alarms, 30 days", hist.length ? hist.join(", ") : "none");
    row("Last seen", m.last_seen ? ago(m.last_seen) : "never");
    if (m.level_dbfs != null) row("Signal", m.level_dbfs.toFixed(1) + " dBFS, SNR " + db(m.snr_db));
    else if (m.device_level != null) row("Signal", "level " + m.device_level);
    if (m.reception_1h_pct != null) {
      const q1 = m.reception_1h_pct, fill = el("span");
      fill.style.width = Math.min(100, q1) + "%"; // CSSOM: the CSP forbids style attributes
      const q = el("span", { class: "reception" }, pct(q1) + " (1 h) · " + pct(m.reception_24h_pct) + " (24 h)",
        el("div", { class: "bar " + (q1 >= 80 ? "" : q1 >= 50 ? "mid" : "low") }, fill));
      row("Reception", q);
    }
    if (m.receivers && m.receivers.length) {
      row("Heard by", m.receivers.map((x) => x.name + (x.name === m.best_receiver ? " (best" +
        (x.mean_snr_db != null ? ", SNR " + db(x.mean_snr_db) : "") + ")" : "")).join(", "));
    }
    if (m.interval_s != null) row("Sends every", m.interval_s + " s");
    if (m.full_frame_phase != null) row("Full frame", "access no. ≡ " + m.full_frame_phase + " (mod 8)" + (m.next_full_frame_in ? ", next in " + m.next_full_frame_in : ""));
    row("Telegrams", String(m.telegrams));
    if (!m.has_key) row("Key", "not set");
    card.append(kv);
    box.append(card);
  }
}

function sortValue(n, k) {
  if (k === "level") return n.level_dbfs != null ? n.level_dbfs : (n.device_level != null ? n.device_level : -1e9);
  if (k === "encrypted") return n.encrypted == null ? -1 : (n.encrypted ? 1 : 0);
  if (k === "last_seen") return Date.parse(n.last_seen);
  return n[k] == null ? "" : n[k];
}

function renderNearby(ns) {
  const q = $("nearby-filter").value.trim().toLowerCase();
  const notMine = $("not-mine").checked;
  const rows = ns.filter((n) => (!notMine || !n.in_list) &&
    (!q || [n.id, n.manufacturer, n.device_type, n.device_type_name].join(" ").toLowerCase().includes(q)));
  rows.sort((a, b) => {
    const x = sortValue(a, sortKey), y = sortValue(b, sortKey);
    return (x < y ? -1 : x > y ? 1 : 0) * sortDir;
  });
  $("count-nearby").textContent = ns.length ? ns.length : "";
  $("nearby-empty").hidden = ns.length > 0;
  const tb = document.querySelector("#nearby-table tbody");
  tb.replaceChildren(...rows.map((n) => {
    let action = null;
    if (n.in_list) action = el("span", { class: "sub", text: "in my list" });
    else if (n.kamstrup) {
      action = el("button", { type: "button", "data-add": n.id, "data-encrypted": String(n.encrypted !== false), text: "Add" });
    }
    const lvl = n.level_dbfs != null ? n.level_dbfs.toFixed(1) + " dBFS" : (n.device_level != null ? String(n.device_level) : "—");
    return el("tr", { class: n.in_list ? "mine" : "", "data-id": n.id },
      el("td", { text: n.id }), el("td", { text: n.manufacturer }),
      el("td", { text: n.device_type_name || n.device_type, title: n.device_type }),
      el("td", { class: "wide", text: n.version }),
      el("td", { text: n.encrypted == null ? "?" : (n.encrypted ? "yes" : "no") }),
      el("td", { class: "num", text: String(n.telegrams) }),
      el("td", { class: "num", text: lvl }),
      el("td", { text: ago(n.last_seen) }),
      el("td", {}, action));
  }));
  for (const th of document.querySelectorAll("#nearby-table th[data-sort]")) {
    if (th.dataset.sort === sortKey) th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
    else th.removeAttribute("aria-sort");
  }
}

document.querySelector("#nearby-table thead").addEventListener("click", (ev) => {
  const th = ev.target.closest("th[data-sort]");
  if (!th) return;
  if (sortKey === th.dataset.sort) sortDir = -sortDir; else { sortKey = th.dataset.sort; sortDir = (sortKey === "id" || sortKey === "manufacturer") ? 1 : -1; }
  if (status) renderNearby(status.nearby);
});
$("nearby-filter").addEventListener("input", () => status && renderNearby(status.nearby));
$("not-mine").addEventListener("change", () => status && renderNearby(status.nearby));

// Adding a meter: the key goes to the gateway once and is cleared here.
document.querySelector("#nearby-table tbody").addEventListener("click", (ev) => {
  const b = ev.target.closest("button[data-add]");
  if (!b) return;
  const f = $("add-form");
  $("add-id").value = b.dataset.add;
  f.dataset.encrypted = b.dataset.encrypted;
  $("add-key").placeholder = b.dataset.encrypted === "false" ? "none needed: this meter sends in plain text" : "32 hex digits from your utility or KEM file";
  $("add-id-text").textContent = b.dataset.add;
  for (const e of f.querySelectorAll(".field-error")) e.textContent = "";
  $("add-done").hidden = true;
  f.hidden = false;
  $("add-name").focus();
});
$("add-cancel").addEventListener("click", () => { $("add-key").value = ""; $("add-form").hidden = true; });
$("add-form").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  const f = $("add-form");
  for (const e of f.querySelectorAll(".field-error")) e.textContent = "";
  const key = $("add-key").value;
  const local = key.replace(/[ \t]/g, "");
  const plain = f.dataset.encrypted === "false";
  if (!(plain && local === "") && !/^[0-9A-Fa-f]{32}$/.test(local)) {
    $("err-key").textContent = "The key must be 32 hex digits (0-9, A-F); found " + local.length + " characters.";
    return;
  }
  const body = JSON.stringify({ id: $("add-id").value, name: $("add-name").value, key: key });
  $("add-key").value = "";
  let res, out;
  try {
    res = await fetch("api/meters", { method: "POST", headers: { "Content-Type": "application/json", "X-Flowiq-Request": "1" }, body });
    out = await res.json();
  } catch (e) {
    $("err-form").textContent = "The gateway did not answer: " + e;
    return;
  }
  if (!res.ok) {
    for (const [k, v] of Object.entries(out.errors || {})) { const e = $("err-" + k); if (e) e.textContent = v; }
    if (out.error) $("err-form").textContent = out.error;
    return;
  }
  f.hidden = true;
  $("add-name").value = "";
  $("add-done").textContent = "Meter " + out.id + " saved to the meter list; its next telegram decodes.";
  $("add-done").hidden = false;
});

function card(title, ...kids) { return el("article", { class: "card" }, el("h2", { text: title }), ...kids); }

function renderRadio(r) {
  const kv = el("dl", { class: "kv" });
  const row = (k, v) => { if (v != null && v !== "") kv.append(el("dt", { text: k }), el("dd", { text: String(v) })); };
  row("Input", r.inputs.join(", "));
  for (const [k, v] of Object.entries(r.settings || {})) row(k.replace("_", " "), v);
  row("State", r.state + (r.state_detail ? " — " + r.state_detail : ""));
  row("Last frame", r.last_frame ? ago(r.last_frame) : "none yet");
  const counts = el("dl", { class: "kv" });
  const crow = (k, v) => { if (v != null) counts.append(el("dt", { text: k }), el("dd", { text: String(v) })); };
  for (const [m, v] of Object.entries(r.frames_per_minute)) crow("Frames/min " + m, v);
  crow("Frames", r.frames); crow("Readings", r.readings);
  crow("CRC failures", r.crc_failures);
  if (r.reopens) crow("Inputs reopened", r.reopens);
  const d = r.demodulator || {};
  crow("Sync words", d.sync_words); crow("Corrected frames", d.corrected_frames); crow("Corrected bits", d.corrected_bits);
  crow("Demodulator CRC failures", d.crc_failures);
  crow("Noise floor", d.noise_floor_dbfs != null ? d.noise_floor_dbfs.toFixed(1) + " dBFS" : null);
  const cards = [card("Source", kv), card("Counters", counts)];
  if (d.spectrum) cards.push(card("Spectrum", spectrum(d.spectrum)));
  $("radio-body").replaceChildren(...cards);
}

// SVG charts drawn here from the API's points.
const SVG = "http://www.w3.org/2000/svg";
function svg(tag, attrs) { const e = document.createElementNS(SVG, tag); for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v); return e; }

function plot(points, opts) {
  const W = 320, H = 150, L = 44, R = 6, T = 8, B = 18;
  const s = svg("svg", { class: "chart", viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": opts.label });
  if (!points.length) { const t = svg("text", { x: W / 2, y: H / 2, "text-anchor": "middle" }); t.textContent = "no data yet"; s.append(t); return s; }
  const xs = points.map((p) => p[0]);
  const ys = points.flatMap((p) => opts.series.map((i) => p[i]));
  let x0 = Math.min(...xs), x1 = Math.max(...xs); if (x1 === x0) { x0 -= 1800; x1 += 1800; }
  let y0 = Math.min(...ys), y1 = Math.max(...ys); if (y1 - y0 < opts.minSpan) { const m = (y0 + y1) / 2; y0 = m - opts.minSpan / 2; y1 = m + opts.minSpan / 2; }
  const X = (x) => L + (x - x0) / (x1 - x0) * (W - L - R), Y = (y) => T + (1 - (y - y0) / (y1 - y0)) * (H - T - B);
  for (let i = 0; i <= 3; i++) {
    const v = y0 + (y1 - y0) * i / 3;
    s.append(svg("line", { class: "grid", x1: L, x2: W - R, y1: Y(v), y2: Y(v) }));
    const t = svg("text", { x: L - 4, y: Y(v) + 3, "text-anchor": "end" }); t.textContent = v.toFixed(opts.digits); s.append(t);
  }
  const fmtX = opts.xfmt || ((x) => new Date(x * 1000).toLocaleString([], { month: "numeric", day: "numeric", hour: "2-digit", minute: "2-digit" }));
  const tl = (x, anchor) => { const t = svg("text", { x: X(x), y: H - 4, "text-anchor": anchor }); t.textContent = fmtX(x); s.append(t); };
  tl(x0, "start"); tl(x1, "end");
  opts.series.forEach((i, n) => {
    if (!opts.dots) s.append(svg("polyline", { class: "line", points: points.map((p) => X(p[0]) + "," + Y(p[i])).join(" ") }));
    if (opts.dots || points.length < 60) for (const p of points) s.append(svg("circle", { class: n ? "snr" : "dot", cx: X(p[0]), cy: Y(p[i]), r: opts.dots ? 2 : 3 }));
  });
  return s;
}

function spectrum(sp) {
  const pts = sp.dbfs.map((v, i) => [sp.start_hz + i * sp.step_hz, v]);
  const s = plot(pts, { series: [1], minSpan: 10, digits: 0, label: "spectrum", xfmt: (hz) => (hz / 1e6).toFixed(3) + " MHz" });
  for (const pl of s.querySelectorAll("polyline")) pl.setAttribute("class", "spec");
  return s;
}

let chartsAt = 0;
async function loadCharts(force) {
  if (!force && Date.now() - chartsAt < 30000) return;
  chartsAt = Date.now();
  let cs;
  try { cs = await (await fetch("api/charts")).json(); } catch (e) { return; }
  const names = Object.fromEntries(((status && status.meters) || []).map((m) => [m.id, m.name]));
  const cards = cs.map((c) => card(names[c.id] || c.id,
    el("div", { class: "sub", text: "Total volume, 7 days (m³)" }),
    plot(c.volume, { series: [1], minSpan: 0.01, digits: 3, label: "total volume" }),
    el("div", { class: "legend" }, "Signal per telegram: ", el("span", { class: "l1", text: "● level dBFS" }), " ", el("span", { class: "l2", text: "● SNR dB" })),
    plot(c.signal, { series: [1, 2], minSpan: 6, digits: 0, dots: true, label: "signal level" })));
  $("charts-body").replaceChildren(...cards);
  if (!cards.length) $("charts-body").append(el("p", { class: "empty", text: "Charts appear for the meters in your list." }));
}

function renderProblems(ps) {
  $("count-problems").textContent = ps.length ? ps.length : "";
  $("problems-empty").hidden = ps.length > 0;
  $("problems-list").replaceChildren(...ps.map((p) => el("li", {},
    el("div", {}, el("span", { class: "kind", text: p.kind }), el("span", { class: "sub", text: " · " + (p.meter ? "meter " + p.meter + " · " : "") + ago(p.time) + (p.count > 1 ? " · " + p.count + "×" : "") })),
    el("div", { class: "text", text: p.text }))));
}

function render(s) {
  status = s;
  renderMine(s.meters);
  renderNearby(s.nearby);
  renderRadio(s.radio);
  renderProblems(s.problems);
  $("footer").textContent = "flowiq-gateway " + s.version + (s.meter_list.path ? " · meter list " + s.meter_list.path : "");
  if (!$("charts").hidden) loadCharts();
}

// Live: server-sent events; when they fail (a proxy that buffers), poll.
let poller = null;
async function poll() {
  try { render(await (await fetch("api/status")).json()); $("live").textContent = "polling"; } catch (e) { $("live").textContent = "offline"; }
}
function connect() {
  const es = new EventSource("api/events");
  es.addEventListener("status", (ev) => {
    render(JSON.parse(ev.data));
    $("live").textContent = "live"; $("live").classList.add("on");
    if (poller) { clearInterval(poller); poller = null; }
  });
  es.onerror = () => {
    $("live").classList.remove("on"); $("live").textContent = "reconnecting…";
    if (!poller) poller = setInterval(poll, 10000);
  };
}
setInterval(() => status && render(status), 30000); // "x min ago" ages
showTab((location.hash || "#mine").slice(1));
poll();
connect();
