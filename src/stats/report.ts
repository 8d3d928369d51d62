// `tracedump stats --html`: one self-contained HTML file (Chart.js and the data inline, no
// network) with the bytes up and down over time, flow-size and duration CDFs, object sizes by
// content type, top destinations by organisation and domain, the distributions' table, and
// tables of the flows and objects that can be sorted and searched.
import fs from 'node:fs';
import path from 'node:path';
import { version } from '../version';
import type { KeptRecords } from './collect';
import { SUMMARY_FIELDS } from './distribution';
import type { Model, SummaryRow } from './model';

/** Chart.js (MIT), the UMD build: one script, no module loader. */
function chartJs(): string {
  // the package exports no path to it: found from its main file (dist/chart.cjs)
  return fs.readFileSync(path.join(path.dirname(require.resolve('chart.js')), 'chart.umd.min.js'), 'utf8');
}

const esc = (s: unknown) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c] as string);

/** JSON that may sit inside a <script> element. */
const scriptJson = (v: unknown) => JSON.stringify(v).replace(/</g, '\\u003c').replace(/\u2028/g, '\\u2028').replace(/\u2029/g, '\\u2029');


function shown(v: number): string {
  if (!Number.isFinite(v)) return '-';
  if (Number.isInteger(v)) return v.toLocaleString('en');
  return Number(v.toPrecision(4)).toLocaleString('en', { maximumSignificantDigits: 4 });
}

function summaryTable(rows: SummaryRow[]): string {
  const by = rows.some((r) => r.group !== undefined);
  const head = `<tr><th>app</th>${by ? '<th>group</th>' : ''}<th>metric</th>${SUMMARY_FIELDS.map((f) => `<th>${f}</th>`).join('')}<th>best fit</th></tr>`;
  const body = rows
    .map(
      (r) =>
        `<tr data-app="${esc(r.app)}" data-metric="${esc(r.metric)}"${by ? ` data-group="${esc(r.group ?? '')}"` : ''}><td>${esc(r.app)}</td>${by ? `<td>${esc(r.group ?? '')}</td>` : ''}<td>${esc(r.metric)}</td>${SUMMARY_FIELDS.map(
          (f) => `<td class="n" data-field="${f}" data-value="${r[f]}">${shown(r[f])}</td>`,
        ).join('')}<td>${esc(r.fit ?? '')}</td></tr>`,
    )
    .join('\n');
  return `<table id="summary"><thead>${head}</thead><tbody>${body}</tbody></table>`;
}

export function renderReport(model: Model, rows: SummaryRow[], kept: KeptRecords): string {
  const apps = Object.entries(model.apps);
  const cards = apps
    .map(([name, a]) => {
      const up = a.destinations.reduce((s, d) => s + d.up, 0);
      const down = a.destinations.reduce((s, d) => s + d.down, 0);
      return `<div class="card" data-app="${esc(name)}"><h3>${esc(name)}</h3><p><b data-field="flows">${a.flows}</b> flows, <b data-field="objects">${a.objects}</b> objects</p><p><b>${shown(up)}</b> bytes up, <b>${shown(down)}</b> down (IP)</p></div>`;
    })
    .join('');
  const listed = (n: number, all: number, what: string) => (n < all ? `<p class="note">The first ${n.toLocaleString('en')} of ${all.toLocaleString('en')} ${what}.</p>` : '');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>tracedump stats: ${esc(apps.map(([n]) => n).join(', '))}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 auto; max-width: 1200px; padding: 1em 2em; color: #222; }
h1 { font-size: 1.6em; margin-bottom: 0.2em; }
h2 { font-size: 1.2em; margin-top: 2em; border-bottom: 1px solid #ddd; }
.meta, .note { color: #666; font-size: 0.9em; }
.cards { display: flex; flex-wrap: wrap; gap: 1em; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0 1em; min-width: 14em; }
.chart { position: relative; height: 320px; margin: 1em 0; }
.pair { display: grid; grid-template-columns: 1fr 1fr; gap: 1em; }
table { border-collapse: collapse; width: 100%; font-size: 12px; }
th, td { border-bottom: 1px solid #eee; padding: 2px 6px; text-align: left; white-space: nowrap; }
td.n { text-align: right; font-variant-numeric: tabular-nums; }
th { background: #f6f6f6; position: sticky; top: 0; cursor: pointer; }
.scroll { max-height: 480px; overflow: auto; border: 1px solid #eee; }
input[type=search] { width: 24em; padding: 4px; margin: 0.5em 0; }
</style>
</head>
<body>
<h1>tracedump stats</h1>
<p class="meta">${esc(model.inputs.length)} capture file(s): ${esc(model.inputs.slice(0, 5).join(', '))}${model.inputs.length > 5 ? ', …' : ''}. Made ${esc(model.generated)} by tracedump ${esc(version)}.</p>
<div class="cards">${cards}</div>

<h2>Bytes up and down over time</h2>
<p class="meta">IP bytes per ${esc(Object.values(model.apps).find((a) => a.windows)?.windows?.seconds ?? '')} s window, from the program's side; down drawn below the axis.</p>
<div class="chart"><canvas id="chart-windows"></canvas></div>

<h2>Flow sizes and durations</h2>
<div class="pair"><div class="chart"><canvas id="chart-flow-up"></canvas></div><div class="chart"><canvas id="chart-flow-down"></canvas></div></div>
<div class="chart"><canvas id="chart-duration"></canvas></div>

<h2>Object sizes by content type</h2>
<div class="chart"><canvas id="chart-types"></canvas></div>

<h2>Top destinations</h2>
<div class="pair"><div class="chart"><canvas id="chart-orgs"></canvas></div><div class="chart"><canvas id="chart-domains"></canvas></div></div>

<h2>Distributions</h2>
<div class="scroll">${summaryTable(rows)}</div>

<h2>Flows</h2>
${listed(kept.flows.length, kept.flowCount, 'flows')}
<input type="search" id="search-flows" placeholder="search the flows">
<div class="scroll"><table id="flows" class="records"></table></div>

<h2>Objects</h2>
${listed(kept.objects.length, kept.objectCount, 'objects')}
<input type="search" id="search-objects" placeholder="search the objects">
<div class="scroll"><table id="objects" class="records"></table></div>

<script>${chartJs()}</script>
<script type="application/json" id="model">${scriptJson(model)}</script>
<script type="application/json" id="records">${scriptJson({ flows: kept.flows, objects: kept.objects })}</script>
<script>${REPORT_SCRIPT}</script>
</body>
</html>
`;
}

// The page's own script: charts from the model, tables from the records.
const REPORT_SCRIPT = `
'use strict';
const model = JSON.parse(document.getElementById('model').textContent);
const records = JSON.parse(document.getElementById('records').textContent);
const COLORS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const apps = Object.keys(model.apps);
const color = (i) => COLORS[i % COLORS.length];
Chart.defaults.animation = false;
Chart.defaults.maintainAspectRatio = false;
const bytes = (v) => { const a = Math.abs(v); return a >= 1e9 ? (v / 1e9).toFixed(1) + ' GB' : a >= 1e6 ? (v / 1e6).toFixed(1) + ' MB' : a >= 1e3 ? (v / 1e3).toFixed(1) + ' kB' : v + ' B'; };
const metric = (app, name) => { for (const g of model.apps[app].groups) if (g.metrics[name]) return g.metrics[name]; return undefined; };
const cdf = (q) => q.map((x, p) => ({ x, y: p / 100 })).filter((pt) => pt.x > 0);
const title = (text) => ({ display: true, text });

// bytes over time: a bar per window, up above the axis and down below; each application from
// its own first window (runs made at different times side by side)
{
  const offsets = new Set();
  for (const app of apps) { const w = model.apps[app].windows; if (w) for (const t of w.start) offsets.add(Number((t - w.start[0]).toFixed(6))); }
  const all = [...offsets].sort((a, b) => a - b);
  const datasets = [];
  apps.forEach((app, i) => {
    const w = model.apps[app].windows;
    if (!w || !w.start.length) return;
    const at = new Map(w.start.map((t, k) => [Number((t - w.start[0]).toFixed(6)), k]));
    datasets.push({ label: app + ' up', data: all.map((t) => (at.has(t) ? w.up[at.get(t)] : 0)), backgroundColor: color(i), stack: app });
    datasets.push({ label: app + ' down', data: all.map((t) => (at.has(t) ? -w.down[at.get(t)] : 0)), backgroundColor: color(i) + '88', stack: app });
  });
  new Chart(document.getElementById('chart-windows'), { type: 'bar', data: { labels: all.map((t) => '+' + t + ' s'), datasets }, options: { datasets: { bar: { barPercentage: 1, categoryPercentage: 0.9 } }, scales: { x: { stacked: true, title: title('window start, from the first window of each application') }, y: { stacked: true, title: title('bytes (down below 0)'), ticks: { callback: (v) => bytes(v) } } }, plugins: { title: title('IP bytes per window') } } });
}

// CDFs
function cdfChart(id, name, label, unit) {
  const datasets = [];
  apps.forEach((app, i) => { const m = metric(app, name); if (m) datasets.push({ label: app, data: cdf(m.quantiles), borderColor: color(i), backgroundColor: color(i), pointRadius: 0 }); });
  new Chart(document.getElementById(id), { type: 'line', data: { datasets }, options: { scales: { x: { type: 'logarithmic', title: title(unit), ticks: { maxTicksLimit: 10, maxRotation: 0, callback: (v) => (unit === 'bytes' ? bytes(v) : Number(v.toPrecision(2))) } }, y: { min: 0, max: 1, title: title('share of flows') } }, plugins: { title: title(label) } } });
}
cdfChart('chart-flow-up', 'flow_bytes_up', 'Flow bytes up (CDF)', 'bytes');
cdfChart('chart-flow-down', 'flow_bytes_down', 'Flow bytes down (CDF)', 'bytes');
cdfChart('chart-duration', 'flow_duration', 'Flow duration (CDF)', 'seconds');

// object sizes by content type: median and p95 per type
{
  const types = new Set();
  for (const app of apps) for (const g of model.apps[app].groups) for (const k of Object.keys(g.metrics)) if (k.startsWith('object_size[')) types.add(k.slice(12, -1));
  const labels = [...types].sort();
  const datasets = [];
  apps.forEach((app, i) => {
    datasets.push({ label: app + ' median', data: labels.map((t) => metric(app, 'object_size[' + t + ']')?.summary.p50 ?? null), backgroundColor: color(i) });
    datasets.push({ label: app + ' p95', data: labels.map((t) => metric(app, 'object_size[' + t + ']')?.summary.p95 ?? null), backgroundColor: color(i) + '66' });
  });
  new Chart(document.getElementById('chart-types'), { type: 'bar', data: { labels, datasets }, options: { scales: { y: { type: 'logarithmic', title: title('response body bytes'), ticks: { callback: (v) => bytes(v) } } }, plugins: { title: title(labels.length ? 'Object size by content type' : 'No HTTP objects (they need tshark, and keys for HTTPS)') } } });
}

// top destinations by organisation and by domain (bytes up + down, every app)
function topChart(id, key, label) {
  const totals = new Map();
  for (const app of apps) for (const d of model.apps[app].destinations) { const k = d[key] || '(unknown)'; totals.set(k, (totals.get(k) || 0) + d.up + d.down); }
  const top = [...totals].sort((a, b) => b[1] - a[1]).slice(0, 12);
  new Chart(document.getElementById(id), { type: 'bar', data: { labels: top.map((t) => t[0]), datasets: [{ label: 'IP bytes', data: top.map((t) => t[1]), backgroundColor: COLORS[0] }] }, options: { indexAxis: 'y', scales: { x: { ticks: { callback: (v) => bytes(v) } } }, plugins: { title: title(label) } } });
}
topChart('chart-orgs', 'org', 'Top organisations');
topChart('chart-domains', 'domain', 'Top domains');

// sortable, searchable tables
function recordTable(id, searchId, rows, columns) {
  const table = document.getElementById(id);
  let sortBy = null, desc = false;
  const cell = (v) => (Array.isArray(v) ? v.join(',') : v === undefined ? '' : String(v));
  function render() {
    const q = document.getElementById(searchId).value.toLowerCase();
    let shown = q ? rows.filter((r) => columns.some((c) => cell(r[c]).toLowerCase().includes(q))) : rows.slice();
    if (sortBy) shown.sort((a, b) => { const x = a[sortBy], y = b[sortBy]; const d = typeof x === 'number' && typeof y === 'number' ? x - y : cell(x).localeCompare(cell(y)); return desc ? -d : d; });
    const head = '<thead><tr>' + columns.map((c) => '<th data-col="' + c + '">' + c + (sortBy === c ? (desc ? ' ▼' : ' ▲') : '') + '</th>').join('') + '</tr></thead>';
    const body = shown.map((r) => '<tr>' + columns.map((c) => { const v = r[c]; const n = typeof v === 'number'; const t = c === 'ts' && n ? new Date(v * 1000).toISOString().slice(11, 23) : cell(v); return '<td' + (n ? ' class="n"' : '') + '>' + t.replace(/[&<>]/g, (ch) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' })[ch]) + '</td>'; }).join('') + '</tr>').join('');
    table.innerHTML = head + '<tbody>' + body + '</tbody>';
    table.querySelectorAll('th').forEach((th) => th.addEventListener('click', () => { const c = th.dataset.col; desc = sortBy === c ? !desc : false; sortBy = c; render(); }));
  }
  document.getElementById(searchId).addEventListener('input', render);
  render();
}
recordTable('flows', 'search-flows', records.flows, ['ts', 'app', 'pid', 'comm', 'proto', 'service', 'id.orig_h', 'id.orig_p', 'id.resp_h', 'id.resp_p', 'server_name', 'domain', 'org', 'conn_state', 'up_bytes', 'down_bytes', 'duration']);
recordTable('objects', 'search-objects', records.objects, ['ts', 'app', 'pid', 'comm', 'kind', 'method', 'host', 'path', 'status', 'resp_content_type', 'resp_body_bytes', 'resp_body_decoded_bytes', 'query', 'answers', 'server_name', 'domain', 'org']);
document.body.dataset.rendered = 'yes';
`;
