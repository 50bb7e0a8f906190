// bitrader risk dashboard: renders the state the server pushes over server-sent events.
// Every value goes in with textContent (never innerHTML): journal text is data, not markup.
"use strict";

const $ = (id) => document.getElementById(id);
const csrf = document.querySelector('meta[name="csrf-token"]').content;
let last = null;
let lastMsgAt = 0;
const seenFills = new Set();

function fmt(v, digits = 2) {
  if (v === null || v === undefined || v === "") return "–";
  const n = Number(v);
  if (!Number.isFinite(n)) return String(v);
  return n.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}
function signed(el, v, digits = 2) {
  el.textContent = (Number(v) > 0 ? "+" : "") + fmt(v, digits);
  el.className = Number(v) > 0 ? "pos" : Number(v) < 0 ? "neg" : "";
}
function qtyFmt(v) {
  if (v === null || v === undefined) return "–";
  return String(Number(v));
}
function time(ns) {
  if (!ns) return "–";
  return new Date(Number(ns) / 1e6).toISOString().substring(11, 23);
}
function pill(el, text, cls) {
  el.textContent = text;
  el.className = "pill " + (cls || "");
}
function cell(tr, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  tr.appendChild(td);
  return td;
}
function fillTable(id, rows, build, empty) {
  const body = $(id).tBodies[0];
  const out = document.createDocumentFragment();
  for (const r of rows) {
    const tr = document.createElement("tr");
    build(tr, r);
    out.appendChild(tr);
  }
  if (!rows.length) {
    const tr = document.createElement("tr");
    const td = cell(tr, empty, "muted");
    td.colSpan = $(id).tHead.rows[0].cells.length;
    out.appendChild(tr);
  }
  body.replaceChildren(out);
}
function bar(frac, plain) {
  const div = document.createElement("div");
  div.className = "bar";
  const span = document.createElement("span");
  const f = Math.max(0, Math.min(1, frac || 0));
  span.style.width = (f * 100).toFixed(1) + "%";
  span.className = plain ? "" : f >= 0.9 ? "bad" : f >= 0.7 ? "warn" : "";
  const em = document.createElement("em");
  em.textContent = frac === null || frac === undefined ? "–" : (frac * 100).toFixed(0) + " %";
  div.append(span, em);
  return div;
}

const STATE_CLS = { active: "good", reconciling: "warn", reducing: "warn", halted: "bad", killed: "bad" };
const BREAKER_CLS = { ACTIVE: "good", REDUCING: "warn", HALTED: "bad" };

function renderHeader(s) {
  const e = s.execution;
  pill($("exec-state"), "execution " + (e.ok ? e.state : "not answering"), e.ok ? STATE_CLS[e.state] : "bad");
  pill($("breaker-state"), "breaker " + e.breaker, BREAKER_CLS[e.breaker]);
  pill($("breaker-big"), e.breaker, BREAKER_CLS[e.breaker]);
  pill($("ks-state"), "kill switch " + (e.kill_switch ? "ON" : "off"), e.kill_switch ? "bad" : "good");
  pill($("mode"), (e.mode || "?") + (e.ws_connected ? " · venue WS up" : " · venue WS down"), e.ws_connected ? "" : "warn");
  const f = s.killswitch_file;
  const engaged = f.on || e.kill_switch;
  $("ks-card").classList.toggle("engaged", engaged);
  let text = f.on ? `ON since ${time(f.ts_ns)} by ${f.source || "?"}: ${f.reason || "no reason"}` :
    f.ts_ns ? `off since ${time(f.ts_ns)} by ${f.source || "?"}: ${f.reason || ""}` : "off (never set)";
  if (f.on && !e.kill_switch) text += "; waiting for execution to acknowledge";
  if (f.on && e.kill_switch) text += `; execution acknowledged (state ${e.state}, ${e.open_orders ?? "?"} open orders)`;
  $("ks-detail").textContent = text;
  $("ks-on").disabled = f.on;
  $("ks-off").disabled = !f.on;
}

function renderPnl(s) {
  for (const k of ["net", "realised", "unrealised", "funding"]) signed($("pnl-" + k), s.pnl[k]);
  $("pnl-fees").textContent = fmt(s.pnl.fees);
  drawChart(s.chart);
}

function drawChart(points) {
  const svg = $("chart");
  const W = 640, H = 190, L = 56, R = 8, T = 10, B = 22;
  const ns = "http://www.w3.org/2000/svg";
  const parts = [];
  const el = (tag, attrs, text) => {
    const n = document.createElementNS(ns, tag);
    for (const [k, v] of Object.entries(attrs)) n.setAttribute(k, v);
    if (text !== undefined) n.textContent = text;
    parts.push(n);
  };
  if (points.length < 2) {
    el("text", { x: W / 2 - 90, y: H / 2 }, "collecting PnL samples…");
    svg.replaceChildren(...parts);
    return;
  }
  const t0 = points[0][0], t1 = points[points.length - 1][0];
  let lo = Infinity, hi = -Infinity;
  for (const p of points) for (const v of p.slice(1)) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
  lo = Math.min(lo, 0); hi = Math.max(hi, 0);
  if (hi - lo < 1e-9) { hi += 1; lo -= 1; }
  const pad = (hi - lo) * 0.08; hi += pad; lo -= pad;
  const x = (t) => L + ((t - t0) / Math.max(1, t1 - t0)) * (W - L - R);
  const y = (v) => T + (1 - (v - lo) / (hi - lo)) * (H - T - B);
  for (const v of [lo, 0, hi]) {
    el("line", { x1: L, x2: W - R, y1: y(v), y2: y(v), stroke: v === 0 ? "#3a4555" : "#222a35", "stroke-dasharray": v === 0 ? "" : "3 4" });
    el("text", { x: 4, y: y(v) + 4 }, fmt(v));
  }
  el("text", { x: L, y: H - 6 }, time(t0 * 1e6).substring(0, 8));
  el("text", { x: W - R - 52, y: H - 6 }, time(t1 * 1e6).substring(0, 8));
  const colours = ["#34d399", "#60a5fa", "#fbbf24"];
  for (let i = 2; i >= 0; i--) {
    const d = points.map((p, j) => (j ? "L" : "M") + x(p[0]).toFixed(1) + " " + y(p[i + 1]).toFixed(1)).join(" ");
    el("path", { d, fill: "none", stroke: colours[i], "stroke-width": i === 0 ? 2.2 : 1.4, "stroke-linejoin": "round" });
  }
  svg.replaceChildren(...parts);
  $("chart-span").textContent = `· one sample a second since the dashboard started (${((t1 - t0) / 1000).toFixed(0)} s)`;
}

function renderPositions(s) {
  fillTable("positions", s.positions, (tr, p) => {
    cell(tr, p.symbol);
    cell(tr, qtyFmt(p.qty), "num " + (p.qty > 0 ? "pos" : p.qty < 0 ? "neg" : ""));
    cell(tr, fmt(p.avg_price), "num");
    cell(tr, fmt(p.mark), "num");
    cell(tr, fmt(p.notional), "num");
    const td = document.createElement("td");
    td.appendChild(bar(p.used));
    td.title = `limit ${fmt(p.limit_notional, 0)} USDT` + (p.limit_qty ? `, ${p.limit_qty} qty` : "");
    tr.appendChild(td);
    cell(tr, fmt(p.realised), "num " + (p.realised > 0 ? "pos" : p.realised < 0 ? "neg" : ""));
    cell(tr, fmt(p.unrealised), "num " + (p.unrealised > 0 ? "pos" : p.unrealised < 0 ? "neg" : ""));
  }, "no symbols");
  const x = s.exposure;
  $("exposure-total").textContent =
    `total exposure ${fmt(x.total)} of ${fmt(x.limit, 0)} USDT (${((x.total / x.limit) * 100).toFixed(1)} %); ` +
    `per-symbol limit ${fmt(s.positions[0]?.limit_notional, 0)} USDT notional incl. resting orders`;
}

function renderLatency(s) {
  const t = s.tick_to_order_us;
  for (const k of ["p50", "p90", "p99", "max"]) $("t2o-" + k).textContent = fmt(t[k], 0);
  $("t2o-n").textContent = `over the last ${s.tick_to_order_n} orders in the journal`;
  const e = s.execution;
  $("counters").textContent =
    `orders sent ${e.orders_sent_total} · fills ${e.fills_total} · refusals ${e.refusals_total} · open ${e.open_orders ?? "?"}`;
}

function renderBreaker(s) {
  fillTable("breaker", s.breaker_history, (tr, b) => {
    cell(tr, time(b.ts_ns));
    cell(tr, `${b.old} → ${b.new}`, BREAKER_CLS[b.new] === "bad" ? "neg" : BREAKER_CLS[b.new] === "good" ? "pos" : "");
    cell(tr, b.trigger);
    cell(tr, b.detail).title = b.detail;
  }, "no transitions in the journal");
  fillTable("operator", s.operator_actions, (tr, a) => {
    cell(tr, time(a.ts_ns));
    cell(tr, String(a.reason).replace("operator.", ""));
    cell(tr, a.detail).title = a.detail;
  }, "none in the journal");
}

function renderRefusals(s) {
  const box = $("refusals");
  const entries = Object.entries(s.refusals);
  const max = Math.max(1, ...entries.map(([, n]) => n));
  const out = document.createDocumentFragment();
  for (const [reason, n] of entries) {
    const row = document.createElement("div");
    row.className = "rrow";
    const name = document.createElement("span");
    name.textContent = reason;
    const b = document.createElement("b");
    b.textContent = n;
    const barEl = bar(n / max, true);
    barEl.querySelector("em").textContent = "";
    row.append(name, barEl, b);
    out.appendChild(row);
  }
  if (!entries.length) {
    const p = document.createElement("p");
    p.className = "muted";
    p.textContent = "no refusals";
    out.appendChild(p);
  }
  box.replaceChildren(out);
  $("refusals-total").textContent =
    `${s.execution.refusals_total} in all; journaled at most 1/s per symbol and reason`;
}

function renderOrders(s) {
  $("open-count").textContent = `${s.open_orders.length} (execution reports ${s.execution.open_orders ?? "?"})`;
  fillTable("open-orders", s.open_orders, (tr, o) => {
    cell(tr, time(o.ts_ns));
    cell(tr, o.client_id);
    cell(tr, o.symbol);
    cell(tr, o.side, o.side === "BUY" ? "pos" : "neg");
    cell(tr, `${o.order_type} ${o.tif}`);
    cell(tr, qtyFmt(o.qty), "num");
    cell(tr, o.price === null ? "market" : fmt(o.price), "num");
    cell(tr, qtyFmt(o.filled_qty), "num");
    cell(tr, o.status);
  }, "no open orders");
}

function renderFills(s) {
  $("fills-count").textContent = `${s.fills_seen} in the journal, newest first`;
  const fresh = last !== null;
  fillTable("fills", s.fills, (tr, f) => {
    cell(tr, time(f.ts_ns));
    cell(tr, f.symbol);
    cell(tr, f.side, f.side === "BUY" ? "pos" : "neg");
    cell(tr, qtyFmt(f.qty), "num");
    cell(tr, fmt(f.price), "num");
    cell(tr, fmt(f.fee, 4), "num");
    cell(tr, f.client_id);
    tr.dataset.fillId = f.fill_id;
    if (fresh && !seenFills.has(f.fill_id)) tr.className = "flash";
    seenFills.add(f.fill_id);
  }, "no fills yet");
}

function renderHealth(s) {
  fillTable("health", s.health, (tr, h) => {
    cell(tr, h.name);
    cell(tr, h.state, h.healthy ? "pos" : "neg");
    cell(tr, h.proc_state ?? "–");
    cell(tr, h.pid ?? "–", "num");
    cell(tr, h.cpu_percent === null || h.cpu_percent === undefined ? "–" : fmt(h.cpu_percent, 1), "num");
    cell(tr, h.rss_bytes ? fmt(h.rss_bytes / 1e6, 1) : "–", "num");
    cell(tr, h.heartbeat_age_s === null || h.heartbeat_age_s === undefined ? "–" : fmt(h.heartbeat_age_s, 2) + " s", "num");
    cell(tr, h.ring_lag_records ?? "–", "num");
    cell(tr, h.ring_dropped_total ?? "–", "num");
    const problems = (h.problems || []).join("; ") || (h.last_error ? h.last_error : "ok");
    cell(tr, problems, (h.problems || []).length ? "neg" : "muted").title = problems;
  }, "waiting for the first health round");
  $("health-age").textContent = s.health_ms ? `as of ${time(s.health_ms * 1e6).substring(0, 8)} UTC` : "";
}

function render(s) {
  renderHeader(s);
  renderPnl(s);
  renderPositions(s);
  renderLatency(s);
  renderBreaker(s);
  renderRefusals(s);
  renderOrders(s);
  renderFills(s);
  renderHealth(s);
  last = s;
  document.body.dataset.version = s.version;
}

function setLive(ok, text) {
  $("live-dot").className = "dot " + (ok ? "on" : "off");
  $("live-text").textContent = text;
}

function connect() {
  const es = new EventSource("/events");
  es.onmessage = (m) => {
    lastMsgAt = Date.now();
    render(JSON.parse(m.data));
    setLive(true, "live");
  };
  es.addEventListener("logout", () => { es.close(); location.reload(); });
  es.onerror = async () => {
    setLive(false, "disconnected, retrying…");
    const r = await fetch("/api/state", { credentials: "same-origin" }).catch(() => null);
    if (r && r.status === 401) { es.close(); location.reload(); }
  };
}

async function killswitch(on) {
  const reason = $("ks-reason").value;
  $("ks-result").textContent = on ? "stopping trading…" : "resuming…";
  const r = await fetch("/api/kill-switch", {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
    body: JSON.stringify({ on, reason }),
  });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) {
    $("ks-result").textContent = `refused (${r.status}): ${body.error || "?"}`;
    return;
  }
  const word = body.on ? "ON" : "off";
  $("ks-result").textContent = body.acknowledged
    ? `kill switch ${word} at ${time(body.ts_ns)}: acknowledged by execution (state ${body.execution_state}, ${body.open_orders} open orders)` +
      (body.persisted ? "" : "; NOT on disk: a restart of execution forgets it")
    : `kill switch ${word} NOT acknowledged: ${body.error}` +
      (body.written ? "; written to the file, which execution reads every poll" : `; file not written either (${body.write_error})`);
  $("ks-result").className = body.acknowledged && body.persisted ? "muted small" : "neg small";
}

setInterval(() => {
  if (lastMsgAt) {
    const age = (Date.now() - lastMsgAt) / 1000;
    if (age > 20) setLive(false, `no update for ${age.toFixed(0)} s`);
  }
}, 1000);

$("ks-on").addEventListener("click", () => killswitch(true));
$("ks-off").addEventListener("click", () => killswitch(false));
$("logout").addEventListener("click", async () => {
  await fetch("/logout", { method: "POST", credentials: "same-origin", headers: { "X-CSRF-Token": csrf } });
  location.reload();
});
connect();
