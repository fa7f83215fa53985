// The audit service's page (SVC-11): it reads only the JSON API of the
// server that serves it, and inserts every agent-controlled string as text.

const main = document.getElementById('main');
const TOKEN_KEY = 'agentctx-read-token';
// The largest workflow drawn without asking (serve --page-max-nodes).
const MAX_NODES = Number(document.querySelector('meta[name="agentctx-page-max-nodes"]')?.content) || 2000;
// Below this scale a node's label is too small to read: a larger graph
// opens at a readable scale on its roots instead of fitted.
const MIN_SCALE = 0.6;

// Status is told by an icon as well as by colour (SVC-11: colour-vision
// deficiencies): each an SVG path in a 12x12 box.
const ICONS = {
  completed: 'M2,6.5 L5,9.5 L10.5,3',
  failed: 'M3,3 L9,9 M9,3 L3,9',
  rejected: 'M6,1 A5,5 0 1,0 6,11 A5,5 0 1,0 6,1 M2.5,9.5 L9.5,2.5',
  pending_human_review: 'M6,1 A5,5 0 1,0 6,11 A5,5 0 1,0 6,1 M6,3 L6,6 L8.5,7.5',
  partial: 'M6,1 L11,10.5 L1,10.5 Z M6,4.5 L6,7.5 M6,8.8 L6,9.4',
  authorized: 'M4,6 A2.5,2.5 0 1,0 4,6.01 M6.5,6 L11,6 M9.5,6 L9.5,8.5',
};
const LABELS = { completed: 'completed', failed: 'failed', rejected: 'rejected by policy', pending_human_review: 'pending human review', partial: 'partial (a predecessor is missing)', authorized: 'authorized, no record yet' };

function el(tag, attrs = {}, ...kids) {
  const ns = ['svg', 'g', 'rect', 'path', 'text', 'polygon', 'circle', 'title', 'defs', 'marker'].includes(tag);
  const e = ns ? document.createElementNS('http://www.w3.org/2000/svg', tag) : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = String(v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, String(v));
  }
  for (const k of kids) if (k !== null && k !== undefined) e.append(typeof k === 'string' ? document.createTextNode(k) : k);
  return e;
}

async function api(path) {
  const headers = {};
  const tok = sessionStorage.getItem(TOKEN_KEY);
  if (tok) headers.Authorization = 'Bearer ' + tok;
  const resp = await fetch(path, { headers });
  if (resp.status === 401) {
    await askToken();
    return api(path);
  }
  const type = resp.headers.get('Content-Type') || '';
  const body = type.includes('json') ? await resp.json() : await resp.text();
  if (!resp.ok) throw new Error(body && body.detail ? body.detail : resp.status + ' ' + resp.statusText);
  return body;
}

function askToken() {
  const form = document.getElementById('token-form');
  form.hidden = false;
  document.getElementById('token').focus();
  return new Promise(resolve => {
    form.onsubmit = ev => {
      ev.preventDefault();
      sessionStorage.setItem(TOKEN_KEY, document.getElementById('token').value);
      form.hidden = true;
      resolve();
    };
  });
}

function fmtTime(s) { return s ? new Date(s * 1000).toISOString().replace('.000Z', 'Z') : ''; }

// statusOf names a task's state as the JSON API does.
function statusOf(nodes) {
  const rec = nodes.find(n => n.kind === 'act-record');
  const any = nodes[0];
  if (nodes.some(n => n.partial)) return 'partial';
  if (rec && rec.status && rec.status !== 'completed') return rec.status;
  const pol = nodes.map(n => n.pol_decision).find(Boolean);
  if (pol === 'rejected' || pol === 'pending_human_review') return pol;
  if (!rec && any.kind === 'act-mandate') return 'authorized';
  return 'completed';
}

async function listPage(cursor, search) {
  const q = '/v1/workflows?limit=50' + (cursor ? '&cursor=' + encodeURIComponent(cursor) : '') + (search ? '&q=' + encodeURIComponent(search) : '');
  const data = await api(q);
  const rows = (data.workflows || []).map(w => {
    const marks = [];
    for (const [k, n] of Object.entries(w.statuses || {})) if (k !== 'completed' && n > 0) marks.push(el('span', { class: 'marker ' + k, text: k + ' ' + n }));
    for (const [k, n] of Object.entries(w.pol_decisions || {})) if (k !== 'approved' && n > 0) marks.push(el('span', { class: 'marker ' + k, text: k + ' ' + n }));
    if (w.partial) marks.push(el('span', { class: 'marker partial', text: 'partial' }));
    return el('tr', { 'data-wid': w.wid },
      el('td', {}, el('a', { href: '/workflows/' + encodeURIComponent(w.wid), text: w.wid })),
      el('td', { text: w.nodes }),
      el('td', { text: fmtTime(w.first_time) + ' → ' + fmtTime(w.last_time) }),
      el('td', {}, ...marks));
  });
  const table = el('table', {}, el('thead', {}, el('tr', {}, el('th', { text: 'Workflow' }), el('th', { text: 'Tasks' }), el('th', { text: 'Time span' }), el('th', { text: 'Markers' }))), el('tbody', {}, ...rows));
  main.replaceChildren(el('h1', { text: search ? 'Workflows matching “' + search + '”' : 'Workflows' }),
    rows.length ? table : el('p', { class: 'muted', text: search ? 'No workflow matches.' : 'No workflow yet.' }));
  if (data.next_cursor) main.append(el('p', {}, el('a', { href: '/?cursor=' + encodeURIComponent(data.next_cursor) + (search ? '&q=' + encodeURIComponent(search) : ''), text: 'Older workflows' })));
}

// layout places tasks in layers (longest path from a root, so roots are
// left), then orders each layer by the mean position of its neighbours,
// sweeping right and left, to keep edges from crossing needlessly.
function layout(tasks, edges) {
  const ids = [...tasks.keys()];
  const succ = new Map(ids.map(i => [i, []])), pred = new Map(ids.map(i => [i, []]));
  for (const e of edges) if (succ.has(e.from) && succ.has(e.to)) { succ.get(e.from).push(e.to); pred.get(e.to).push(e.from); }
  const indeg = new Map(ids.map(i => [i, pred.get(i).length]));
  const layer = new Map();
  const queue = ids.filter(i => indeg.get(i) === 0).sort((a, b) => tasks.get(a).time - tasks.get(b).time);
  for (const i of queue) layer.set(i, 0);
  for (let h = 0; h < queue.length; h++) {
    const u = queue[h];
    for (const v of succ.get(u)) {
      layer.set(v, Math.max(layer.get(v) || 0, layer.get(u) + 1));
      indeg.set(v, indeg.get(v) - 1);
      if (indeg.get(v) === 0) queue.push(v);
    }
  }
  for (const i of ids) if (!layer.has(i)) layer.set(i, 0); // on a cycle: drawn, not placed by order
  const layers = [];
  for (const i of ids) (layers[layer.get(i)] ||= []).push(i);
  for (const l of layers) l.sort((a, b) => tasks.get(a).time - tasks.get(b).time);
  const pos = new Map();
  const index = () => layers.forEach(l => l.forEach((i, k) => pos.set(i, k)));
  index();
  const mean = (xs, d) => xs.length ? xs.reduce((s, x) => s + pos.get(x), 0) / xs.length : d;
  for (let sweep = 0; sweep < 4; sweep++) {
    const order = sweep % 2 === 0 ? layers.slice(1) : layers.slice(0, -1).reverse();
    for (const l of order) {
      const key = new Map(l.map(i => [i, mean(sweep % 2 === 0 ? pred.get(i) : succ.get(i), pos.get(i))]));
      l.sort((a, b) => key.get(a) - key.get(b));
      l.forEach((i, k) => pos.set(i, k));
    }
  }
  const X = 200, Y = 76;
  const xy = new Map();
  const tallest = Math.max(...layers.map(l => l.length));
  layers.forEach((l, li) => {
    const off = (tallest - l.length) * Y / 2;
    l.forEach((i, k) => xy.set(i, { x: 20 + li * X, y: 20 + off + k * Y, layer: li, pos: k }));
  });
  // A small graph keeps its natural size instead of being blown up to the frame.
  return { xy, layers, succ, pred, width: Math.max(1000, 40 + layers.length * X), height: Math.max(480, 40 + tallest * Y) };
}

async function workflowPage(wid, force = false) {
  document.body.dataset.ready = 'false';
  const g = await api('/v1/workflows/' + encodeURIComponent(wid));
  const tasks = new Map();
  for (const n of g.nodes) {
    const t = tasks.get(n.jti) || { jti: n.jti, nodes: [], time: n.time };
    t.nodes.push(n);
    t.time = Math.min(t.time, n.time);
    tasks.set(n.jti, t);
  }
  main.replaceChildren(el('h1', {}, 'Workflow ', el('code', { text: wid })));
  if (tasks.size > MAX_NODES && !force) {
    const draw = el('button', { type: 'button', id: 'draw-anyway', text: `Draw all ${tasks.size} tasks`, onclick: () => workflowPage(wid, true).then(() => { document.body.dataset.ready = 'true'; }) });
    main.append(el('p', { class: 'warn', role: 'alert', text: `This workflow has ${tasks.size} tasks, more than the ${MAX_NODES} this page draws at once: drawing it may take a while. Export it, or draw it anyway.` }),
      el('p', {}, draw, ' ', exports(wid)));
    draw.focus();
    return;
  }
  const t0 = performance.now();
  const L = layout(tasks, g.edges);
  const crit = new Set(g.critical_path || []);
  const critEdges = new Set();
  for (let i = 1; i < (g.critical_path || []).length; i++) critEdges.add(g.critical_path[i - 1] + '\u0000' + g.critical_path[i]);
  const svg = el('svg', { id: 'graph', viewBox: `0 0 ${L.width} ${L.height}`, role: 'group', 'aria-label': 'task graph' });
  const world = el('g', { class: 'world' });
  svg.append(world);
  const W = 150, H = 44;
  let drawn = 0;
  for (const e of g.edges) {
    const a = L.xy.get(e.from), b = L.xy.get(e.to);
    if (!a || !b || e.from === e.to) continue; // a missing predecessor, or a mandate and its record
    drawn++;
    const x1 = a.x + W, y1 = a.y + H / 2, x2 = b.x, y2 = b.y + H / 2, mx = (x1 + x2) / 2;
    world.append(el('path', { class: 'edge' + (critEdges.has(e.from + '\u0000' + e.to) ? ' critical' : ''), d: `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`, 'data-from': e.from, 'data-to': e.to }));
  }
  const focusables = new Map();
  for (const [jti, t] of tasks) {
    const p = L.xy.get(jti);
    const status = statusOf(t.nodes);
    const kinds = t.nodes.map(n => n.kind);
    const kind = kinds.includes('act-record') ? 'act-record' : kinds[0];
    const act = t.nodes.map(n => n.exec_act).find(Boolean) || (t.nodes[0].cap || []).join(', ') || '(mandate)';
    const rec = t.nodes.find(n => n.kind === 'act-record');
    // Who acted: an ECT's issuer, an ACT task's subject (the executor, who signed the record).
    const lead = { iss: rec ? rec.sub || rec.iss : t.nodes[0].kind === 'act-mandate' ? t.nodes[0].sub || t.nodes[0].iss : t.nodes[0].iss };
    // Shape by family (colour is not the only cue): ECT a rectangle, ACT a hexagon.
    const shape = kind === 'ect'
      ? el('rect', { class: 'shape', x: p.x, y: p.y, width: W, height: H, rx: 6 })
      : el('polygon', { class: 'shape', points: `${p.x + 10},${p.y} ${p.x + W - 10},${p.y} ${p.x + W},${p.y + H / 2} ${p.x + W - 10},${p.y + H} ${p.x + 10},${p.y + H} ${p.x},${p.y + H / 2}` });
    const node = el('g', { class: 'node' + (crit.has(jti) ? ' critical' : ''), tabindex: 0, role: 'button', 'data-jti': jti, 'data-kind': kind, 'data-status': status,
      'aria-label': `${act} by ${lead.iss}, ${status}` },
      el('title', { text: `${act} — ${lead.iss} — ${LABELS[status] || status}` }), shape,
      ICONS[status] ? el('path', { class: 'icon', d: ICONS[status], transform: `translate(${p.x + W - 20},${p.y + 6})` }) : null,
      el('text', { x: p.x + 10, y: p.y + 18, text: clip(act, 18) }),
      el('text', { x: p.x + 10, y: p.y + 34, text: clip(status + ' · ' + shortIss(lead.iss), 22) }));
    node.addEventListener('click', () => showDetails(t));
    node.addEventListener('keydown', ev => navigate(ev, jti, t, L, focusables));
    world.append(node);
    focusables.set(jti, node);
  }
  const laid = performance.now() - t0;
  svg.dataset.layoutMs = laid.toFixed(1);
  const details = el('aside', { id: 'details', 'aria-live': 'polite' }, el('p', { class: 'muted', text: 'Select a task to see its verified claims.' }));
  const timeline = el('ol', { class: 'timeline', 'aria-label': 'timeline' },
    ...[...tasks.values()].sort((a, b) => a.time - b.time).map(t => el('li', { 'data-task': t.jti },
      el('button', { type: 'button', onclick: () => { focusables.get(t.jti).focus(); reveal(L.xy.get(t.jti)); showDetails(t); }, text: fmtTime(t.time) + ' ' + (t.nodes[0].exec_act || t.nodes[0].kind) }))));
  const bar = el('div', { class: 'toolbar' },
    el('button', { type: 'button', onclick: () => zoom(svg, L, 0.8), text: 'Zoom in' }),
    el('button', { type: 'button', onclick: () => zoom(svg, L, 1.25), text: 'Zoom out' }),
    el('button', { type: 'button', onclick: () => svg.setAttribute('viewBox', `0 0 ${L.width} ${L.height}`), text: 'Fit' }),
    exports(wid),
    el('span', { class: 'muted', text: `${tasks.size} tasks, ${drawn} edges, laid out in ${laid.toFixed(0)} ms` }));
  pan(svg);
  main.append(bar, legend(), el('div', { class: 'layout' }, el('div', {}, svg, el('h2', { text: 'Timeline' }), timeline), details));
  // A graph too large to read when fitted opens at a readable scale on its
  // roots (Fit shows it all).
  const box = svg.getBoundingClientRect();
  const fit = Math.min(box.width / L.width, box.height / L.height);
  if (fit < MIN_SCALE && box.width > 0) {
    const w = box.width / MIN_SCALE, h = box.height / MIN_SCALE;
    const first = L.xy.get(L.layers[0][0]);
    svg.setAttribute('viewBox', `0 ${Math.max(0, first.y + 22 - h / 2)} ${w} ${h}`);
    svg.dataset.view = 'part';
  } else svg.dataset.view = 'fit';
}

// legend explains the shapes, icons and lines of the graph.
function legend() {
  const item = (status) => el('li', {}, el('svg', { class: 'key', viewBox: '0 0 12 12', width: 14, height: 14, 'aria-hidden': 'true' },
    el('path', { class: 'icon', 'data-icon': status, d: ICONS[status] })), ' ' + LABELS[status]);
  return el('details', { class: 'legend' }, el('summary', { text: 'Legend' }),
    el('ul', {}, ...Object.keys(ICONS).map(item),
      el('li', { text: 'rectangle: an ECT; hexagon: an ACT task (its mandate and record together)' }),
      el('li', { text: 'thick red line: the critical path; dashed outline: partial or pending' })));
}

function clip(s, n) { s = String(s || ''); return s.length > n ? s.slice(0, n - 1) + '…' : s; }
function shortIss(s) { s = String(s || ''); const i = s.lastIndexOf('/'); return i >= 0 ? s.slice(i + 1) : s; }

// exports offers the workflow as the API's JSON, DOT and Mermaid (fetched
// with the read token, if any) and the drawn SVG.
function exports(wid) {
  const base = '/v1/workflows/' + encodeURIComponent(wid);
  const fetchAs = (q, name, type) => async () => {
    const body = await api(base + q);
    save(new Blob([typeof body === 'string' ? body : JSON.stringify(body, null, 2)], { type }), name);
  };
  return el('span', {},
    el('button', { type: 'button', onclick: fetchAs('', wid + '.json', 'application/json'), text: 'JSON' }), ' ',
    el('button', { type: 'button', onclick: fetchAs('?format=dot', wid + '.dot', 'text/vnd.graphviz'), text: 'DOT' }), ' ',
    el('button', { type: 'button', onclick: fetchAs('?format=mermaid', wid + '.mmd', 'text/plain'), text: 'Mermaid' }), ' ',
    el('button', { type: 'button', onclick: () => downloadSVG(wid), text: 'SVG' }));
}

function save(blob, name) {
  const a = el('a', { href: URL.createObjectURL(blob), download: name });
  a.click();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}

function downloadSVG(wid) {
  const svg = document.getElementById('graph');
  save(new Blob([new XMLSerializer().serializeToString(svg)], { type: 'image/svg+xml' }), wid + '.svg');
}

function zoom(svg, L, f) {
  const [x, y, w, h] = svg.getAttribute('viewBox').split(' ').map(Number);
  const nw = w * f, nh = h * f;
  svg.setAttribute('viewBox', `${x + (w - nw) / 2} ${y + (h - nh) / 2} ${nw} ${nh}`);
}

function pan(svg) {
  let start = null;
  svg.addEventListener('pointerdown', ev => { if (ev.target === svg) { start = { x: ev.clientX, y: ev.clientY, vb: svg.getAttribute('viewBox').split(' ').map(Number) }; svg.setPointerCapture(ev.pointerId); } });
  svg.addEventListener('pointermove', ev => {
    if (!start) return;
    const [x, y, w, h] = start.vb, r = svg.getBoundingClientRect();
    svg.setAttribute('viewBox', `${x - (ev.clientX - start.x) * w / r.width} ${y - (ev.clientY - start.y) * h / r.height} ${w} ${h}`);
  });
  svg.addEventListener('pointerup', () => { start = null; });
  svg.addEventListener('wheel', ev => { ev.preventDefault(); zoom(svg, null, ev.deltaY < 0 ? 0.9 : 1.1); }, { passive: false });
}

// navigate moves focus: right to a successor, left to a predecessor, up
// and down within the layer; Enter shows the details.
function navigate(ev, jti, t, L, focusables) {
  const p = L.xy.get(jti);
  let next = null;
  if (ev.key === 'ArrowRight') next = L.succ.get(jti)[0];
  else if (ev.key === 'ArrowLeft') next = L.pred.get(jti)[0];
  else if (ev.key === 'ArrowDown') next = L.layers[p.layer][p.pos + 1];
  else if (ev.key === 'ArrowUp') next = L.layers[p.layer][p.pos - 1];
  else if (ev.key === 'Enter' || ev.key === ' ') { ev.preventDefault(); showDetails(t); return; }
  if (next && focusables.get(next)) { ev.preventDefault(); focusables.get(next).focus(); reveal(L.xy.get(next)); }
}

// reveal moves the view so that the node at p is inside it (keyboard
// navigation in a graph larger than the view).
function reveal(p) {
  const svg = document.getElementById('graph');
  const [x, y, w, h] = svg.getAttribute('viewBox').split(' ').map(Number);
  if (p.x >= x && p.x + 150 <= x + w && p.y >= y && p.y + 44 <= y + h) return;
  svg.setAttribute('viewBox', `${p.x + 75 - w / 2} ${p.y + 22 - h / 2} ${w} ${h}`);
}

async function showDetails(t) {
  const d = document.getElementById('details');
  d.replaceChildren(el('h2', { text: 'Task ' + t.jti }));
  let entries = [];
  try { entries = (await api('/v1/tasks/' + encodeURIComponent(t.jti))).entries || []; } catch (e) { d.append(el('p', { class: 'warn', text: e.message })); }
  for (const n of t.nodes) {
    const e = entries.find(x => x.kind === n.kind && x.wid === n.wid) || {};
    const dl = el('dl', {});
    const row = (k, v) => { if (v !== undefined && v !== '' && v !== null) dl.append(el('dt', { text: k }), el('dd', { text: Array.isArray(v) ? v.join(', ') : v })); };
    row('kind', n.kind); row('issuer', n.iss); row('subject', n.sub); row('action', n.exec_act); row('capabilities', n.cap);
    row('predecessors', n.pred); row('time', fmtTime(n.time)); row('status', n.status); row('policy', n.pol_decision);
    row('partial', n.partial ? 'yes (a predecessor is missing)' : '');
    const [h, p] = (e.token || '').split('.');
    const hdr = decode(h) || {}, claims = decode(p) || {};
    row('signer key', hdr.kid ? `${hdr.kid} (${hdr.alg})` : '');
    // Every entry was verified on append and has a receipt: ECT-L3.
    row('assurance level', e.token ? 'L3: signed, in this ledger with a receipt' : '');
    row('input hash', claims.inp_hash); row('output hash', claims.out_hash);
    row('ledger index', e.index); row('received', e.received_at ? new Date(e.received_at).toISOString() : '');
    row('leaf hash', e.leaf_hash);
    d.append(el('h3', { text: n.kind }), dl);
    if (e.token) d.append(el('h4', { text: 'Verified header' }), el('pre', { text: pretty(h) }), el('h4', { text: 'Verified claims' }), el('pre', { text: pretty(p) }));
    if (e.index !== undefined) {
      const rc = el('pre', { class: 'receipt', text: '…' });
      d.append(el('h4', { text: 'Receipt' }), rc, el('p', {}, el('a', { href: '/entries/' + e.index, text: 'Entry and its inclusion proof' })));
      api('/v1/entries/' + e.index + '?proof=1').then(r => { rc.textContent = JSON.stringify(r.proof, null, 2); }, err => { rc.textContent = err.message; });
    }
  }
}

function decode(b64) {
  try { return JSON.parse(atob(String(b64).replace(/-/g, '+').replace(/_/g, '/'))); } catch { return null; }
}

function pretty(b64) {
  try { return JSON.stringify(JSON.parse(atob(b64.replace(/-/g, '+').replace(/_/g, '/'))), null, 2); } catch { return b64; }
}

async function entryPage(index) {
  const [e, cp, key] = await Promise.all([api('/v1/entries/' + encodeURIComponent(index) + '?proof=1'), api('/v1/checkpoint'), api('/v1/key')]);
  const dl = el('dl', {});
  for (const k of ['index', 'kind', 'jti', 'wid', 'iss', 'exec_act', 'received_at', 'leaf_hash']) if (e[k] !== undefined) dl.append(el('dt', { text: k }), el('dd', { text: e[k] }));
  main.replaceChildren(el('h1', { text: 'Entry ' + e.index }), dl,
    el('h2', { text: 'Inclusion proof' }), el('pre', { text: JSON.stringify(e.proof, null, 2) }),
    el('h2', { text: 'Latest checkpoint' }), checkpointView(cp),
    el('p', {}, 'Verifier key: ', el('code', { text: key.verifier_key })),
    e.wid ? el('p', {}, el('a', { href: '/workflows/' + encodeURIComponent(e.wid), text: 'Its workflow' })) : null);
}

// checkpointView shows a C2SP checkpoint's size and root beside its text.
// The server signed it and checks it on every proof; a relying party checks
// it again with the verifier key (agentctx checkpoint verify).
function checkpointView(cp) {
  const [origin, size, root] = String(cp).split('\n');
  return el('div', { class: 'checkpoint' },
    el('dl', {}, el('dt', { text: 'origin' }), el('dd', { text: origin || '' }), el('dt', { text: 'size' }), el('dd', { text: size || '' }),
      el('dt', { text: 'root' }), el('dd', { text: root || '' })),
    el('pre', { text: cp }));
}

async function ledgerPage() {
  const [cp, key] = await Promise.all([api('/v1/checkpoint').catch(() => 'no checkpoint yet'), api('/v1/key')]);
  main.replaceChildren(el('h1', { text: 'Ledger ' + key.id }), el('h2', { text: 'Latest checkpoint' }), checkpointView(cp),
    el('p', {}, 'Verifier key: ', el('code', { text: key.verifier_key })));
}

document.getElementById('search').addEventListener('submit', async ev => {
  ev.preventDefault();
  const q = document.getElementById('q').value.trim();
  if (!q) return;
  try {
    const t = await api('/v1/tasks/' + encodeURIComponent(q));
    const wid = (t.entries || []).map(e => e.wid).find(Boolean);
    if (wid) { location.href = '/workflows/' + encodeURIComponent(wid); return; }
  } catch { /* not a jti: search the workflows */ }
  location.href = '/?q=' + encodeURIComponent(q);
});

async function route() {
  const path = location.pathname;
  try {
    let m;
    if ((m = path.match(/^\/workflows\/(.+)$/))) await workflowPage(decodeURIComponent(m[1]));
    else if ((m = path.match(/^\/entries\/(\d+)$/))) await entryPage(m[1]);
    else if (path === '/ledger') await ledgerPage();
    else {
      const params = new URLSearchParams(location.search);
      document.getElementById('q').value = params.get('q') || '';
      await listPage(params.get('cursor'), params.get('q'));
    }
    document.body.dataset.ready = 'true';
  } catch (e) {
    main.replaceChildren(el('p', { class: 'warn', role: 'alert', text: e.message }));
    document.body.dataset.ready = 'error';
  }
}
route();
