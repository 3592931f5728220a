// Pyrite's web UI: plain JavaScript over the Prometheus HTTP API, no build step.
// Each page is a function that fills <main>; the path (under the route prefix) picks the page.
"use strict";

const PREFIX = document.querySelector('meta[name="pyrite-prefix"]').content;
const TITLE = document.querySelector('meta[name="pyrite-title"]').content;

// ---------------------------------------------------------------------------------------------
// Helpers: DOM building, API calls, durations and times.

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c !== null && c !== undefined) node.append(c instanceof Node ? c : String(c));
  }
  return node;
}

function svgEl(tag, attrs) {
  const node = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
  return node;
}

class ApiError extends Error {}

async function api(path, params, method) {
  const body = new URLSearchParams(params || {});
  const url = PREFIX + "/api/v1" + path;
  const response = method === "POST"
    ? await fetch(url, { method: "POST", body })
    : await fetch(body.toString() ? `${url}?${body}` : url);
  let json;
  try {
    json = await response.json();
  } catch (e) {
    throw new ApiError(`${response.status} ${response.statusText}`);
  }
  if (json.status !== "success") throw new ApiError(`${json.errorType}: ${json.error}`);
  return json;
}

const UNITS = { y: 31536000000, w: 604800000, d: 86400000, h: 3600000, m: 60000, s: 1000, ms: 1 };

/** "1h30m" or seconds ("90") to milliseconds; null if invalid. */
function parseDuration(text) {
  text = text.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(parseFloat(text) * 1000);
  const re = /(\d+)(ms|y|w|d|h|m|s)/g;
  let total = 0, consumed = 0, m;
  while ((m = re.exec(text)) !== null) {
    if (m.index !== consumed) return null;
    total += parseInt(m[1], 10) * UNITS[m[2]];
    consumed = re.lastIndex;
  }
  return consumed === text.length && total > 0 ? total : null;
}

function formatDuration(ms) {
  let out = "";
  for (const [unit, size] of Object.entries(UNITS)) {
    if (ms >= size) {
      out += Math.floor(ms / size) + unit;
      ms %= size;
    }
  }
  return out || "0s";
}

/** Whether PromQL takes a metric name bare; other names (UTF-8, as 3.x) are written quoted. */
const bare = name => /^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(name);
/** The same for a label name, which takes no colon. */
const bareLabel = name => /^[a-zA-Z_][a-zA-Z0-9_]*$/.test(name);

/** A series as PromQL writes it: `name{a="1"}`, or `{"a.b", "c.d"="1"}` for names it quotes. */
function labelsText(metric) {
  let name = metric.__name__ || "";
  const pairs = Object.keys(metric).filter(k => k !== "__name__").sort()
    .map(k => `${bareLabel(k) ? k : JSON.stringify(k)}=${JSON.stringify(metric[k])}`);
  if (name && !bare(name)) {
    pairs.unshift(JSON.stringify(name));
    name = "";
  }
  return pairs.length ? `${name}{${pairs.join(", ")}}` : (name || "{}");
}

function labelChips(labels) {
  return el("span", { class: "labels mono" },
    Object.keys(labels).sort().map(k => el("span", {}, `${k}="${labels[k]}"`)));
}

function ago(iso) {
  const t = Date.parse(iso);
  if (!t || t < 0) return "never";
  const s = (Date.now() - t) / 1000;
  return s < 60 ? `${s.toFixed(1)}s ago` : `${formatDuration(Math.round(s) * 1000)} ago`;
}

function isoTime(ms) {
  return new Date(ms).toISOString().replace(".000Z", "Z");
}

function errorBox(e) {
  return el("div", { class: "error", role: "alert" }, e.message || String(e));
}

function table(headers, rows) {
  return el("table", {},
    el("thead", {}, el("tr", {}, headers.map(h => el("th", {}, h)))),
    el("tbody", {}, rows));
}

// ---------------------------------------------------------------------------------------------
// The query page: expression box with metric-name completion, table and graph.

let metricNames = null;

async function loadMetricNames() {
  if (metricNames === null) {
    metricNames = [];
    try {
      metricNames = (await api("/label/__name__/values")).data;
    } catch (e) {
      metricNames = [];
    }
  }
  return metricNames;
}

/** Completion of the metric name being typed in `textarea`, shown in `list`. */
function attachCompletion(textarea, list, onExecute) {
  let items = [], selected = 0, complete = false;
  // The word typed so far; dots too, as names from OpenTelemetry have them.
  const wordBefore = () => {
    const before = textarea.value.slice(0, textarea.selectionStart);
    const m = /[a-zA-Z_:][a-zA-Z0-9_:.]*$/.exec(before);
    return m ? m[0] : "";
  };
  // What choosing `name` writes: the name itself if PromQL takes it bare, its escaped text inside
  // a string the user opened, else a selector quoting it (`{"http.server.duration"}`), as 3.x.
  const insertion = (name, inString) => {
    if (bare(name)) return name;
    const quoted = JSON.stringify(name);
    return inString ? quoted.slice(1, -1) : `{${quoted}}`;
  };
  const close = () => { items = []; list.hidden = true; list.replaceChildren(); };
  const accept = i => {
    const word = wordBefore();
    const pos = textarea.selectionStart;
    const start = pos - word.length;
    const text = insertion(items[i], textarea.value[start - 1] === '"');
    textarea.value = textarea.value.slice(0, start) + text + textarea.value.slice(pos);
    const caret = start + text.length;
    textarea.setSelectionRange(caret, caret);
    close();
    textarea.focus();
  };
  const render = () => {
    list.replaceChildren(...items.map((name, i) => el("li", {
      class: i === selected ? "selected" : null,
      role: "option",
      onmousedown: ev => { ev.preventDefault(); accept(i); },
    }, name)));
    list.hidden = items.length === 0;
  };
  textarea.addEventListener("input", async () => {
    const word = wordBefore();
    if (!word) return close();
    const names = await loadMetricNames();
    // A whole name typed bare that PromQL cannot take bare stays offered, to be quoted.
    const starts = names.filter(n => n.startsWith(word) && (n !== word || !bare(n)));
    const contains = names.filter(n => !n.startsWith(word) && n.includes(word));
    items = starts.concat(contains).slice(0, 20);
    // A whole metric name already typed: Enter runs the query, only Tab completes further.
    complete = bare(word) && names.includes(word);
    selected = 0;
    render();
  });
  textarea.addEventListener("keydown", ev => {
    if (items.length) {
      if (ev.key === "ArrowDown" || ev.key === "ArrowUp") {
        selected = (selected + (ev.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
        render();
        ev.preventDefault();
        return;
      }
      if (ev.key === "Tab" || (ev.key === "Enter" && !ev.shiftKey && !complete)) {
        accept(selected);
        ev.preventDefault();
        return;
      }
      if (ev.key === "Escape") { close(); return; }
    }
    if (ev.key === "Enter" && !ev.shiftKey) {
      ev.preventDefault();
      close();
      onExecute();
    }
  });
  textarea.addEventListener("blur", () => setTimeout(close, 150));
  textarea.addEventListener("focus", loadMetricNames);
}

// The page's state from its URL: Pyrite's own parameters, or the first panel of upstream's
// (`g0.expr`, `g0.tab` 0/graph or 1/table, `g0.range_input`), which alerts' generatorURL and
// the templates' graphLink/tableLink use, as do links made for Prometheus.
function queryState() {
  const p = new URLSearchParams(location.search);
  const tab = p.get("tab") ?? p.get("g0.tab");
  return {
    expr: p.get("expr") ?? p.get("g0.expr") ?? "",
    tab: tab === "graph" || tab === "0" ? "graph" : "table",
    range: p.get("range") || p.get("g0.range_input") || "1h",
    end: p.get("end") || "",
    step: p.get("step") || "",
  };
}

function saveState(state) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(state)) if (v) p.set(k, v);
  history.replaceState(null, "", `${location.pathname}?${p}`);
}

function queryPage(main) {
  const state = queryState();
  const textarea = el("textarea", {
    id: "expr", rows: 1, spellcheck: "false", autocomplete: "off",
    placeholder: "Expression (press Enter to execute, Shift+Enter for a new line)",
    "aria-label": "Expression",
  });
  textarea.value = state.expr;
  const list = el("ul", { class: "completions", role: "listbox", hidden: true });
  const output = el("div", { id: "output" });
  const stats = el("div", { class: "stats", id: "stats" });
  const rangeInput = el("input", { id: "range", value: state.range, "aria-label": "Range", title: "Range, e.g. 1h" });
  const endInput = el("input", { id: "end", class: "wide", value: state.end, placeholder: "now", "aria-label": "End time", title: "End time (RFC 3339), empty for now" });
  const stepInput = el("input", { id: "step", value: state.step, placeholder: "auto", "aria-label": "Step", title: "Resolution step, e.g. 15s" });
  const tabButtons = {};
  const controls = el("div", { class: "controls", id: "graph-controls" },
    el("button", { onclick: () => shiftRange(0.5), title: "Shorter range" }, "−"),
    rangeInput,
    el("button", { onclick: () => shiftRange(2), title: "Longer range" }, "+"),
    el("label", {}, "End ", endInput),
    el("label", {}, "Step ", stepInput));

  function shiftRange(factor) {
    const ms = parseDuration(rangeInput.value) || 3600000;
    rangeInput.value = formatDuration(Math.max(1000, Math.round(ms * factor / 1000) * 1000));
    execute();
  }

  function selectTab(tab) {
    state.tab = tab;
    for (const [name, b] of Object.entries(tabButtons)) {
      b.classList.toggle("active", name === tab);
      b.setAttribute("aria-selected", name === tab);
    }
    controls.hidden = tab !== "graph";
    execute();
  }

  async function execute() {
    state.expr = textarea.value.trim();
    state.range = rangeInput.value.trim();
    state.end = endInput.value.trim();
    state.step = stepInput.value.trim();
    saveState(state);
    output.replaceChildren();
    stats.textContent = "";
    if (!state.expr) return;
    const endMs = state.end ? Date.parse(state.end) : Date.now();
    if (Number.isNaN(endMs)) return output.replaceChildren(errorBox(new Error("invalid end time: use RFC 3339, e.g. 2024-01-01T00:00:00Z")));
    const started = performance.now();
    try {
      if (state.tab === "table") {
        const res = await api("/query", { query: state.expr, time: endMs / 1000 }, "POST");
        renderTable(output, res);
        stats.textContent = `Load time: ${Math.round(performance.now() - started)} ms · Result series: ${resultCount(res.data)}`;
      } else {
        const range = parseDuration(state.range);
        if (!range) throw new Error(`invalid range ${JSON.stringify(state.range)}: use a duration such as 1h`);
        const step = state.step ? parseDuration(state.step) : Math.max(1000, Math.floor(range / 250 / 1000) * 1000);
        if (!step) throw new Error(`invalid step ${JSON.stringify(state.step)}: use a duration such as 15s`);
        const res = await api("/query_range", {
          query: state.expr, start: (endMs - range) / 1000, end: endMs / 1000, step: step / 1000,
        }, "POST");
        renderGraph(output, res.data.result, endMs - range, endMs);
        stats.textContent = `Load time: ${Math.round(performance.now() - started)} ms · Resolution: ${formatDuration(step)} · Result series: ${res.data.result.length}`;
      }
    } catch (e) {
      output.replaceChildren(errorBox(e));
    }
  }

  for (const input of [rangeInput, endInput, stepInput]) {
    input.addEventListener("keydown", ev => { if (ev.key === "Enter") execute(); });
  }
  attachCompletion(textarea, list, execute);
  const tabs = el("div", { class: "tabs", role: "tablist" },
    ["table", "graph"].map(tab => (tabButtons[tab] = el("button", {
      role: "tab", id: `tab-${tab}`, onclick: () => selectTab(tab),
    }, tab === "table" ? "Table" : "Graph"))));
  main.append(
    el("div", { class: "query-box" },
      textarea, list,
      el("button", { class: "primary", id: "execute", onclick: execute }, "Execute")),
    tabs, controls, stats, output);
  selectTab(state.tab);
  textarea.focus();
}

function resultCount(data) {
  return Array.isArray(data.result) && data.resultType !== "scalar" && data.resultType !== "string" ? data.result.length : 1;
}

function renderTable(output, res) {
  const { resultType, result } = res.data;
  const warnings = (res.warnings || []).map(w => el("div", { class: "warning" }, w));
  let rows;
  if (resultType === "scalar" || resultType === "string") {
    rows = [el("tr", {}, el("td", {}, resultType), el("td", { class: "num" }, result[1]))];
  } else if (result.length === 0) {
    rows = [el("tr", {}, el("td", { colspan: 2, class: "muted" }, "Empty query result"))];
  } else if (resultType === "vector") {
    rows = result.map(s => el("tr", {}, el("td", { class: "mono" }, labelsText(s.metric)), el("td", { class: "num" }, s.value[1])));
  } else {
    rows = result.map(s => el("tr", {}, el("td", { class: "mono" }, labelsText(s.metric)),
      el("td", { class: "num mono" }, s.values.map(([t, v]) => el("div", {}, `${v} @${t}`)))));
  }
  output.replaceChildren(...warnings, table(["Series", "Value"], rows));
}

// ---------------------------------------------------------------------------------------------
// The graph: an SVG line chart with axes, a legend that toggles series, and a tooltip.

const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];

function niceStep(span, count) {
  const raw = span / count;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  const norm = raw / mag;
  return (norm < 1.5 ? 1 : norm < 3 ? 2 : norm < 7 ? 5 : 10) * mag;
}

const TIME_STEPS = [1, 5, 15, 30, 60, 300, 900, 1800, 3600, 10800, 21600, 43200, 86400, 604800].map(s => s * 1000);

function timeLabel(ms, span) {
  const iso = new Date(ms).toISOString();
  if (span > 2 * 86400000) return iso.slice(5, 16).replace("T", " ");
  return span > 600000 ? iso.slice(11, 16) : iso.slice(11, 19);
}

function formatValue(v) {
  if (!Number.isFinite(v)) return String(v);
  const a = Math.abs(v);
  if (a !== 0 && (a >= 1e6 || a < 1e-3)) return v.toExponential(2);
  return String(Number(v.toPrecision(6)));
}

function renderGraph(output, result, start, end) {
  if (result.length === 0) {
    output.replaceChildren(el("div", { class: "muted" }, "Empty query result"));
    return;
  }
  const series = result.map((s, i) => ({
    name: labelsText(s.metric),
    color: COLORS[i % COLORS.length],
    points: s.values.map(([t, v]) => [t * 1000, parseFloat(v)]).filter(([, v]) => Number.isFinite(v)),
    visible: true,
  }));
  const wrap = el("div", { class: "graph", id: "graph" });
  const tooltip = el("div", { class: "tooltip", id: "tooltip" });
  const legend = el("ul", { class: "legend", id: "legend" });
  const W = 1000, H = 360, L = 64, R = 12, T = 10, B = 28;
  const svg = svgEl("svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", role: "img", "aria-label": "Graph of the query result" });
  wrap.append(svg, tooltip);

  function draw() {
    svg.replaceChildren();
    const shown = series.filter(s => s.visible);
    let lo = Infinity, hi = -Infinity;
    for (const s of shown) for (const [, v] of s.points) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (!Number.isFinite(lo)) { lo = 0; hi = 1; }
    if (lo === hi) { lo -= 1; hi += 1; }
    const yStep = niceStep(hi - lo, 5);
    lo = Math.floor(lo / yStep) * yStep;
    hi = Math.ceil(hi / yStep) * yStep;
    const x = t => L + (t - start) / (end - start) * (W - L - R);
    const y = v => T + (hi - v) / (hi - lo) * (H - T - B);
    for (let v = lo; v <= hi + yStep / 2; v += yStep) {
      svg.append(svgEl("line", { class: "grid", x1: L, x2: W - R, y1: y(v), y2: y(v) }));
      const label = svgEl("text", { x: L - 6, y: y(v) + 4, "text-anchor": "end" });
      label.textContent = formatValue(Number(v.toPrecision(12)));
      svg.append(label);
    }
    const span = end - start;
    const tStep = TIME_STEPS.find(s => span / s <= 8) || TIME_STEPS[TIME_STEPS.length - 1];
    for (let t = Math.ceil(start / tStep) * tStep; t <= end; t += tStep) {
      svg.append(svgEl("line", { class: "grid", x1: x(t), x2: x(t), y1: T, y2: H - B }));
      const label = svgEl("text", { x: x(t), y: H - 8, "text-anchor": "middle" });
      label.textContent = timeLabel(t, span);
      svg.append(label);
    }
    svg.append(svgEl("line", { class: "axis", x1: L, x2: L, y1: T, y2: H - B }));
    svg.append(svgEl("line", { class: "axis", x1: L, x2: W - R, y1: H - B, y2: H - B }));
    // A gap longer than 1.5 steps breaks the line, as a missing sample should.
    for (const s of shown) {
      let d = "", prev = null;
      const gap = s.points.length > 1 ? (s.points[1][0] - s.points[0][0]) * 1.5 : Infinity;
      for (const [t, v] of s.points) {
        d += `${prev === null || t - prev > gap ? "M" : "L"}${x(t).toFixed(1)},${y(v).toFixed(1)}`;
        prev = t;
      }
      svg.append(svgEl("path", { class: "series", d, stroke: s.color, "vector-effect": "non-scaling-stroke" }));
    }
    svg.onmousemove = ev => {
      const box = svg.getBoundingClientRect();
      const px = (ev.clientX - box.left) / box.width * W;
      const py = (ev.clientY - box.top) / box.height * H;
      const t = start + (px - L) / (W - L - R) * (end - start);
      let best = null;
      for (const s of shown) {
        for (const [pt, v] of s.points) {
          const dist = Math.hypot(x(pt) - px, (y(v) - py) * 0.5);
          if (!best || dist < best.dist) best = { dist, s, pt, v };
        }
      }
      if (!best || t < start || t > end) { tooltip.style.display = "none"; return; }
      tooltip.replaceChildren(
        el("div", {}, isoTime(best.pt)),
        el("div", {}, el("span", { class: "swatch", style: `background:${best.s.color}` }), best.s.name),
        el("div", {}, `value: ${best.v}`));
      tooltip.style.display = "block";
      // Right of the cursor, or left of it where it would run past the graph's edge.
      const cx = ev.clientX - box.left;
      const right = cx + 12 + tooltip.offsetWidth <= box.width;
      tooltip.style.left = `${right ? cx + 12 : Math.max(0, cx - 12 - tooltip.offsetWidth)}px`;
      tooltip.style.top = `${ev.clientY - box.top + 12}px`;
    };
    svg.onmouseleave = () => { tooltip.style.display = "none"; };
  }

  legend.append(...series.map(s => {
    const item = el("li", { tabindex: 0, title: "Click to show or hide" },
      el("span", { class: "swatch", style: `background:${s.color}` }), s.name);
    const toggle = () => { s.visible = !s.visible; item.classList.toggle("dim", !s.visible); draw(); };
    item.addEventListener("click", toggle);
    item.addEventListener("keydown", ev => { if (ev.key === "Enter" || ev.key === " ") { ev.preventDefault(); toggle(); } });
    return item;
  }));
  output.replaceChildren(wrap, legend);
  draw();
}

// ---------------------------------------------------------------------------------------------
// Targets, alerts, rules and the status pages.

async function targetsPage(main) {
  const onlyUnhealthy = new URLSearchParams(location.search).get("unhealthy") === "1";
  const res = await api("/targets", { state: "active" });
  const pools = new Map();
  for (const t of res.data.activeTargets) {
    if (!pools.has(t.scrapePool)) pools.set(t.scrapePool, []);
    pools.get(t.scrapePool).push(t);
  }
  const toggle = el("button", {
    onclick: () => { location.search = onlyUnhealthy ? "" : "unhealthy=1"; },
  }, onlyUnhealthy ? "Show all" : "Show unhealthy only");
  main.append(el("h2", {}, "Targets"), toggle);
  if (pools.size === 0) main.append(el("p", { class: "muted" }, "No targets are configured."));
  for (const [pool, targets] of [...pools.entries()].sort()) {
    const up = targets.filter(t => t.health === "up").length;
    const shown = onlyUnhealthy ? targets.filter(t => t.health !== "up") : targets;
    if (onlyUnhealthy && shown.length === 0) continue;
    const rows = shown.map(t => el("tr", { class: "target" },
      el("td", { class: "mono" }, el("a", { href: t.scrapeUrl }, t.scrapeUrl)),
      el("td", { class: `health-${t.health}` }, t.health.toUpperCase()),
      el("td", {}, labelChips(t.labels)),
      el("td", { title: t.lastScrape }, ago(t.lastScrape)),
      el("td", { class: "num" }, `${(t.lastScrapeDuration * 1000).toFixed(1)} ms`),
      el("td", { class: "error-cell" }, t.lastError ? el("span", { class: "health-down" }, t.lastError) : "")));
    main.append(el("details", { class: "pool", open: true },
      el("summary", {}, `${pool} (${up}/${targets.length} up)`),
      table(["Endpoint", "State", "Labels", "Last scrape", "Scrape duration", "Error"], rows)));
  }
}

async function alertsPage(main) {
  const [alerts, rules] = await Promise.all([api("/alerts"), api("/rules", { type: "alert" })]);
  main.append(el("h2", {}, "Alerts"));
  const groups = rules.data.groups.filter(g => g.rules.length);
  if (groups.length === 0) main.append(el("p", { class: "muted" }, "No alerting rules are loaded."));
  for (const g of groups) {
    main.append(el("h3", {}, `${g.file} > ${g.name}`));
    main.append(table(["Alert", "State", "Active since", "Value", "Labels", "Annotations"],
      g.rules.flatMap(r => (r.alerts.length ? r.alerts : [null]).map(a => el("tr", { class: "alert" },
        el("td", { class: "mono" }, r.name),
        el("td", { class: `state-${a ? a.state : r.state}` }, (a ? a.state : r.state).toUpperCase()),
        el("td", { title: a ? a.activeAt : "" }, a ? ago(a.activeAt) : ""),
        el("td", { class: "num" }, a ? String(Number(a.value)) : ""),
        el("td", {}, a ? labelChips(a.labels) : ""),
        el("td", {}, a ? annotationList(a.annotations) : ""))))));
  }
  if (alerts.data.alerts.length === 0) main.append(el("p", { class: "muted" }, "No alerts are pending or firing."));
}

function annotationList(annotations) {
  return el("dl", { class: "annotations" }, ...Object.entries(annotations).flatMap(([k, v]) =>
    [el("dt", {}, k), el("dd", {}, v)]));
}

/** A rule as it reads in its file. */
function ruleText(r) {
  const lines = [r.type === "alerting" ? `alert: ${r.name}` : `record: ${r.name}`, `expr: ${r.query}`];
  if (r.duration) lines.push(`for: ${formatDuration(r.duration * 1000)}`);
  if (r.keepFiringFor) lines.push(`keep_firing_for: ${formatDuration(r.keepFiringFor * 1000)}`);
  const block = (name, map) => {
    const entries = Object.entries(map || {});
    if (entries.length) lines.push(`${name}:`, ...entries.map(([k, v]) => `  ${k}: ${v}`));
  };
  block("labels", r.labels);
  block("annotations", r.annotations);
  return lines.join("\n");
}

async function rulesPage(main) {
  const res = await api("/rules");
  main.append(el("h2", {}, "Rules"));
  if (res.data.groups.length === 0) main.append(el("p", { class: "muted" }, "No rule groups are loaded."));
  for (const g of res.data.groups) {
    main.append(el("h3", {}, `${g.file} > ${g.name} (every ${g.interval}s)`));
    main.append(table(["Rule", "State", "Health", "Last evaluation", "Error"], g.rules.map(r => el("tr", { class: "rule" },
      el("td", {}, el("pre", {}, ruleText(r))),
      el("td", { class: r.state ? `state-${r.state}` : "" }, r.state || ""),
      el("td", { class: r.health === "ok" ? "health-up" : r.health === "err" ? "health-down" : "" }, r.health),
      el("td", {}, r.lastEvaluation ? ago(r.lastEvaluation) : ""),
      el("td", { class: "health-down" }, r.lastError || "")))));
  }
}

function keyValueTable(object) {
  return table(["Name", "Value"], Object.entries(object).map(([k, v]) =>
    el("tr", {}, el("th", {}, k), el("td", { class: "mono" }, String(v)))));
}

async function statusPage(main) {
  const [runtime, build] = await Promise.all([api("/status/runtimeinfo"), api("/status/buildinfo")]);
  main.append(el("h2", {}, "Runtime information"), keyValueTable(runtime.data),
    el("h2", {}, "Build information"), keyValueTable(build.data));
}

async function tsdbPage(main) {
  const res = await api("/status/tsdb");
  const d = res.data;
  const head = { ...d.headStats };
  for (const k of ["minTime", "maxTime"]) {
    if (Math.abs(head[k]) < 8.64e15) head[k] = `${isoTime(head[k])} (${head[k]})`;
  }
  main.append(el("h2", {}, "TSDB status"), el("h3", {}, "Head"), keyValueTable(head));
  const tops = [
    ["seriesCountByMetricName", "Top metric names by series"],
    ["labelValueCountByLabelName", "Top label names by distinct values"],
    ["memoryInBytesByLabelName", "Top label names by bytes of values"],
    ["seriesCountByLabelValuePair", "Top label pairs by series"],
  ];
  for (const [key, title] of tops) {
    main.append(el("h3", {}, title), table(["Name", "Count"], d[key].map(({ name, value }) =>
      el("tr", {}, el("td", { class: "mono" }, name), el("td", { class: "num" }, value)))));
  }
}

async function configPage(main) {
  const res = await api("/status/config");
  main.append(el("h2", {}, "Configuration"), el("pre", { id: "config" }, res.data.yaml));
}

async function flagsPage(main) {
  const res = await api("/status/flags");
  const filter = el("input", { class: "filter", placeholder: "Filter", "aria-label": "Filter flags" });
  const rows = Object.entries(res.data).map(([k, v]) => el("tr", {}, el("td", { class: "mono" }, `--${k}`), el("td", { class: "mono" }, v)));
  filter.addEventListener("input", () => {
    const q = filter.value.toLowerCase();
    for (const r of rows) r.hidden = !r.textContent.toLowerCase().includes(q);
  });
  main.append(el("h2", {}, "Command-line flags"), filter, table(["Flag", "Value"], rows));
}

// ---------------------------------------------------------------------------------------------
// Routing: the path under the prefix names the page.

const PAGES = {
  query: queryPage,
  graph: queryPage,
  targets: targetsPage,
  alerts: alertsPage,
  rules: rulesPage,
  status: statusPage,
  "tsdb-status": tsdbPage,
  config: configPage,
  flags: flagsPage,
};

async function main() {
  const page = location.pathname.slice(PREFIX.length).replace(/^\/+|\/+$/g, "") || "query";
  const root = document.getElementById("page");
  for (const a of document.querySelectorAll("nav a[data-page]")) {
    a.classList.toggle("active", a.dataset.page === page || (page === "graph" && a.dataset.page === "query"));
  }
  document.title = `${TITLE} · ${page}`;
  try {
    await (PAGES[page] || (m => m.append(el("p", {}, "No such page."))))(root);
  } catch (e) {
    root.append(errorBox(e));
  }
}

main();
