// weft's live map: the topology a node serves at /topology, drawn as SVG,
// with figures from its /metrics (Prometheus text) and ownership from its
// /cluster, polled every `poll` ms (?poll=N, default 2000). Rates are
// counters' increase over the last WINDOW_MS (10 s) of scrapes, by the node's
// clock (X-Weft-Time-Ms on /metrics), as Prometheus' rate() over a range. No
// library, no network beyond the node that served this page.
'use strict';

const SVG = 'http://www.w3.org/2000/svg';
const params = new URLSearchParams(location.search);
const POLL_MS = Math.max(250, Number(params.get('poll')) || 2000);
const WINDOW_MS = 10000;
const COL_W = 300, SVC_W = 236, TOPIC_W = 220, GAP_Y = 18, PAD = 24;
const PATTERN_COLOURS = {
  stateless: '#8fb8ef', enricher: '#8fd1b0', gate: '#f2b36f', stateful: '#c9a3e6',
  'stream-aside': '#e6a3b8', sidecar: '#b5b5b5',
};

// ---- small helpers -------------------------------------------------------

function el(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function html(tag, attrs, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function fmt(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return '–';
  if (Math.abs(n) >= 1e6) return (n / 1e6).toFixed(1) + 'M';
  return Math.round(n).toLocaleString('en-US');
}
function fmtRate(r) {
  if (r === null || r === undefined || Number.isNaN(r)) return '–/s';
  return (r >= 100 ? Math.round(r).toLocaleString('en-US') : r.toFixed(1)) + '/s';
}
function fmtSeconds(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return '–';
  return s < 1 ? (s * 1000).toFixed(s < 0.01 ? 2 : 1) + ' ms' : s.toFixed(2) + ' s';
}
// At most `max` characters, the middle elided (a topic's ends tell it apart).
function shorten(text, max) {
  if (text.length <= max) return text;
  const keep = max - 1, head = Math.ceil(keep / 2);
  return text.slice(0, head) + '…' + text.slice(text.length - (keep - head));
}
function setFig(node, value, text) {
  node.setAttribute('data-value', String(value));
  node.textContent = text;
}

// ---- Prometheus text -----------------------------------------------------

function parseMetrics(text) {
  const out = [];
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
    for (let l; m[2] && (l = re.exec(m[2]));)
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === 'n' ? '\n' : c));
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

class scrape {
  constructor(samples, at) { this.samples = samples; this.at = at; }
  sum(name, where) {
    let total = 0, seen = false;
    for (const s of this.samples) {
      if (s.name !== name) continue;
      let ok = true;
      for (const [k, v] of Object.entries(where || {})) if (s.labels[k] !== v) { ok = false; break; }
      if (ok && Number.isFinite(s.value)) { total += s.value; seen = true; }
    }
    return seen ? total : null;
  }
  each(name, fn) { for (const s of this.samples) if (s.name === name) fn(s); }
}

// Counter rate between two scrapes (0 after a restart reset it).
function rate(now, before, name, where) {
  if (!before) return null;
  const a = now.sum(name, where), b = before.sum(name, where);
  if (a === null || b === null) return null;
  const dt = (now.at - before.at) / 1000;
  return dt > 0 ? Math.max(0, a - b) / dt : null;
}

// A quantile of a histogram's observations between two scrapes (linear
// within the bucket, as histogram_quantile()); null without observations.
function quantile(q, now, before, name) {
  const buckets = new Map();
  now.each(name + '_bucket', (s) => buckets.set(s.labels.le, s.value));
  if (before) before.each(name + '_bucket', (s) => {
    if (buckets.has(s.labels.le)) buckets.set(s.labels.le, buckets.get(s.labels.le) - s.value);
  });
  const sorted = [...buckets.entries()]
    .map(([le, n]) => [le === '+Inf' ? Infinity : Number(le), n])
    .sort((a, b) => a[0] - b[0]);
  const total = sorted.length ? sorted[sorted.length - 1][1] : 0;
  if (!(total > 0)) return null;
  const want = q * total;
  let prevLe = 0, prevN = 0;
  for (const [le, n] of sorted) {
    if (n >= want) {
      if (le === Infinity) return prevLe;
      return prevLe + (le - prevLe) * (n > prevN ? (want - prevN) / (n - prevN) : 1);
    }
    prevLe = le; prevN = n;
  }
  return prevLe;
}

// ---- the picture ---------------------------------------------------------

// The graph the map draws: clients, the topics records flow through (facts,
// intermediate, repartition) and services; changelog and dead-letter topics
// go to the internal table, stores into their service's box.
function buildGraph(topo) {
  const nodes = new Map();
  const add = (id, n) => { if (!nodes.has(id)) nodes.set(id, Object.assign({ id, in: [], out: [] }, n)); };
  for (const c of topo.clients || []) add('client:' + c.name, { type: 'client', name: c.name, detail: c.kind });
  const drawn = new Set(['fact', 'intermediate', 'repartition']);
  const topicKind = new Map((topo.topics || []).map((t) => [t.name, t.kind]));
  for (const s of topo.services || []) add('service:' + s.name, { type: 'service', name: s.name, svc: s });
  for (const t of topo.topics || [])
    if (drawn.has(t.kind) && !t.internal) add('topic:' + t.name, { type: 'topic', name: t.name, kind: t.kind });
  const globalOf = new Map(); // global store -> its topic
  for (const e of topo.edges || []) if (e.kind === 'global') globalOf.set(e.to, e.from);
  const edges = [];
  const link = (from, to, kind) => {
    if (!nodes.has(from) || !nodes.has(to)) return;
    const e = { from, to, kind };
    edges.push(e);
    nodes.get(from).out.push(e);
    nodes.get(to).in.push(e);
  };
  for (const e of topo.edges || []) {
    if (e.kind === 'reads' || e.kind === 'writes') link(e.from, e.to, e.kind);
    else if (e.kind === 'lookup' && globalOf.has(e.from)) link(globalOf.get(e.from), e.to, 'global');
  }
  return { nodes, edges, topicKind };
}

// Layers left to right: longest path from the sources once the edges that
// close a cycle (found depth-first, sources first) are set aside; then a few
// barycentre sweeps to order each column.
function layout(g) {
  const ids = [...g.nodes.keys()];
  const roots = ids.filter((id) => g.nodes.get(id).in.length === 0);
  const state = new Map(), post = [];
  const visit = (id) => {
    state.set(id, 1);
    for (const e of g.nodes.get(id).out) {
      const s = state.get(e.to);
      if (s === 1) e.back = true;
      else if (!s) visit(e.to);
    }
    state.set(id, 2);
    post.push(id);
  };
  for (const id of roots.concat(ids)) if (!state.get(id)) visit(id);
  const rank = new Map();
  for (const id of post.reverse()) {
    let r = 0;
    for (const e of g.nodes.get(id).in) if (!e.back) r = Math.max(r, (rank.get(e.from) ?? 0) + 1);
    rank.set(id, r);
  }
  const cols = [];
  for (const id of ids) (cols[rank.get(id)] ||= []).push(id);
  const pos = new Map();
  const index = () => cols.forEach((c) => c.forEach((id, i) => pos.set(id, i)));
  index();
  for (let sweep = 0; sweep < 6; ++sweep) {
    for (const c of cols) {
      const bary = (id) => {
        const n = g.nodes.get(id);
        const near = n.in.concat(n.out).filter((e) => !e.back)
          .map((e) => pos.get(e.from === id ? e.to : e.from));
        return near.length ? near.reduce((a, b) => a + b, 0) / near.length : pos.get(id);
      };
      const b = new Map(c.map((id) => [id, bary(id)]));
      c.sort((x, y) => b.get(x) - b.get(y));
    }
    index();
  }
  return { cols, rank };
}

function serviceLines(n, topo) {
  const s = n.svc;
  const stores = (topo.stores || []).filter((x) => x.service === s.name && !x.internal);
  const globals = s.globalTables || [];
  return 7 + stores.length + (globals.length ? 1 : 0);
}

// Draws the picture once; returns the elements the figures update.
function drawMap(svg, topo) {
  const g = buildGraph(topo);
  const { cols } = layout(g);
  const figs = { services: new Map(), topics: new Map(), edges: [] };
  const height = (id) => {
    const n = g.nodes.get(id);
    if (n.type === 'service') return 16 * serviceLines(n, topo) + 12;
    return n.type === 'topic' ? 40 : 34;
  };
  const colHeights = cols.map((c) => c.reduce((h, id) => h + height(id) + GAP_Y, -GAP_Y));
  const H = Math.max(...colHeights, 100);
  const box = new Map();
  cols.forEach((c, ci) => {
    let y = PAD + (H - colHeights[ci]) / 2;
    for (const id of c) {
      const n = g.nodes.get(id);
      const w = n.type === 'service' ? SVC_W : TOPIC_W;
      box.set(id, { x: PAD + ci * COL_W + (SVC_W - w) / 2, y, w, h: height(id) });
      y += height(id) + GAP_Y;
    }
  });
  const backs = g.edges.filter((e) => e.back).length;
  const W = PAD * 2 + (cols.length - 1) * COL_W + SVC_W + 48; // + back edges' turn
  const bottom = PAD + H + 12;
  svg.setAttribute('width', W);
  svg.setAttribute('height', bottom + 16 + backs * 9 + PAD);
  svg.setAttribute('viewBox', `0 0 ${W} ${bottom + 16 + backs * 9 + PAD}`);
  svg.replaceChildren();
  const defs = el('defs');
  const marker = el('marker', { id: 'arrow', viewBox: '0 0 10 10', refX: 9, refY: 5,
                                markerWidth: 7, markerHeight: 7, orient: 'auto-start-reverse' });
  marker.appendChild(el('path', { d: 'M0,0 L10,5 L0,10 z', fill: '#8a93a3' }));
  defs.appendChild(marker);
  svg.appendChild(defs);
  const edgeLayer = el('g', { class: 'edges' });
  const nodeLayer = el('g', { class: 'nodes' });
  const labelLayer = el('g', { class: 'edge-labels' });
  svg.append(edgeLayer, nodeLayer, labelLayer);

  // Ports: a service spreads its edges along its sides; topics take them mid-side.
  const port = (id, e, side) => {
    const b = box.get(id), n = g.nodes.get(id);
    if (n.type !== 'service') return { x: side === 'in' ? b.x : b.x + b.w, y: b.y + b.h / 2 };
    const list = side === 'in' ? n.in : n.out;
    const i = list.indexOf(e);
    return { x: side === 'in' ? b.x : b.x + b.w, y: b.y + (b.h * (i + 1)) / (list.length + 1) };
  };
  let backIndex = 0;
  for (const e of g.edges) {
    const a = port(e.from, e, 'out'), b = port(e.to, e, 'in');
    let d;
    if (e.back || b.x <= a.x) {
      const low = bottom + 8 + 9 * backIndex++;
      d = `M${a.x},${a.y} C${a.x + 40},${a.y} ${a.x + 40},${low} ${a.x},${low} ` +
          `L${b.x},${low} C${b.x - 40},${low} ${b.x - 40},${b.y} ${b.x},${b.y}`;
    } else {
      const mx = (a.x + b.x) / 2;
      d = `M${a.x},${a.y} C${mx},${a.y} ${mx},${b.y} ${b.x},${b.y}`;
    }
    const cls = 'edge ' + e.kind + (e.back ? ' back' : '');
    const path = el('path', { d, class: cls, 'marker-end': 'url(#arrow)',
                              'data-edge': e.from + '->' + e.to });
    edgeLayer.appendChild(path);
    // The figure sits at the service's end of the edge.
    const svcEnd = e.to.startsWith('service:') ? b : e.from.startsWith('service:') ? a : null;
    if (svcEnd) {
      const left = svcEnd === b;
      const t = el('text', { class: 'edge-fig fig', x: svcEnd.x + (left ? -4 : 4), y: svcEnd.y - 3,
                             'text-anchor': left ? 'end' : 'start',
                             'data-edge': e.from + '->' + e.to, 'data-kind': e.kind });
      labelLayer.appendChild(t);
      figs.edges.push({ e, text: t, path });
    }
  }

  for (const [id, n] of g.nodes) {
    const b = box.get(id);
    if (n.type === 'client') {
      const grp = el('g', { class: 'client', 'data-client': n.name });
      grp.append(el('rect', { x: b.x, y: b.y, width: b.w, height: b.h }),
                 el('text', { x: b.x + 10, y: b.y + 15, 'font-weight': 600 }, n.name),
                 el('text', { x: b.x + 10, y: b.y + 28, class: 'small' }, n.detail || 'client'));
      nodeLayer.appendChild(grp);
    } else if (n.type === 'topic') {
      const grp = el('g', { class: 'topic', 'data-topic': n.name, 'data-kind': n.kind });
      const fig = el('text', { x: b.x + 14, y: b.y + 31, class: 'small fig', 'data-fig': 'topic' });
      grp.append(el('rect', { x: b.x, y: b.y, width: b.w, height: b.h }),
                 el('text', { x: b.x + 14, y: b.y + 16 }, shorten(n.name, 31)), fig,
                 el('title', {}, n.name + ' (' + n.kind + ')'));
      nodeLayer.appendChild(grp);
      figs.topics.set(n.name, { fig, kind: n.kind });
    } else {
      const s = n.svc;
      const grp = el('g', { class: 'service', 'data-service': s.name, 'data-pattern': s.pattern });
      grp.append(el('rect', { class: 'box', x: b.x, y: b.y, width: b.w, height: b.h }),
                 el('rect', { class: 'band', x: b.x + 1, y: b.y + 1, width: 6, height: b.h - 2,
                              fill: PATTERN_COLOURS[s.pattern] || '#ccc' }));
      let y = b.y + 16;
      const line = (cls, text, fig) => {
        const t = el('text', Object.assign({ x: b.x + 14, y, class: cls }, fig ? { 'data-fig': fig } : {}), text);
        grp.appendChild(t);
        y += 16;
        return t;
      };
      const title = line('', shorten(s.name, 30));
      title.setAttribute('font-weight', 600);
      line('small', s.pattern + (s.detail ? ': ' + s.detail : ''));
      const f = {
        rates: line('fig', '', 'rates'),
        totals: line('fig', '', 'totals'),
        bad: line('fig', '', 'bad'),
        stores: [],
        owners: null,
      };
      const globals = s.globalTables || [];
      if (globals.length) line('small', '⇢ global table ' + globals.join(', '));
      for (const st of (topo.stores || []).filter((x) => x.service === s.name && !x.internal))
        f.stores.push({ name: st.name, text: line('small fig', '', 'store') });
      f.owners = line('small', '', 'owners');
      f.standbys = line('small', '', 'standbys');
      nodeLayer.appendChild(grp);
      figs.services.set(s.name, f);
    }
  }
  return figs;
}

function drawLegend(root) {
  root.replaceChildren();
  for (const [k, v] of Object.entries(PATTERN_COLOURS)) {
    const s = html('span');
    const i = html('i'); i.style.background = v; i.style.borderRadius = '2px';
    s.append(i, k);
    root.appendChild(s);
  }
  for (const [k, label] of [['fact', 'fact topic'], ['intermediate', 'intermediate topic'],
                            ['repartition', 'repartition topic']]) {
    const s = html('span');
    const i = html('i'); i.style.background = `var(--${k})`;
    s.append(i, label);
    root.appendChild(s);
  }
  root.appendChild(html('span', {}, 'edge figures: records/s over the last 10 s on this node; ' +
                               'lag: records on the broker not yet fetched'));
}

// ---- figures ---------------------------------------------------------------

// Who holds each (service, partition): unit names are "svc/p+svc/p".
function ownership(cluster) {
  const of = new Map();
  for (const u of (cluster && cluster.units) || []) {
    for (const task of String(u.tasks || '').split('+')) {
      const at = task.lastIndexOf('/');
      if (at < 0) continue;
      const svc = task.slice(0, at), p = task.slice(at + 1);
      if (!of.has(svc)) of.set(svc, []);
      of.get(svc).push({ p, active: u.active, standbys: (u.standbys || []).map((s) => s.node || s),
                         warmup: u.warmup || '' });
    }
  }
  return of;
}

function card(root, key, label, value, text, alert) {
  const c = html('div', { class: 'card' + (alert ? ' alert' : ''), 'data-card': key });
  const v = html('div', { class: 'v', 'data-fig': key, 'data-value': String(value) }, text);
  c.append(html('div', { class: 'k' }, label), v);
  root.appendChild(c);
}

function update(view, now, before, cluster) {
  const topo = view.topo;
  const info = now.samples.find((s) => s.name === 'weft_node_info');
  const node = info ? info.labels.node : '?';
  const clustered = info && info.labels.clustered === 'true';
  const eo = info && info.labels.guarantee === 'exactly_once';
  document.getElementById('app').textContent = topo.application;
  document.title = topo.application + ' · weft live map';
  const members = (cluster && cluster.members) || [];
  document.getElementById('scope').textContent = clustered
    ? `Figures are node ${node}'s own: its tasks, its consumer's lag, its stores ` +
      `(${members.length} nodes; open another node's map for its figures, links below). ` +
      'Ownership and standbys are the whole cluster\'s.'
    : `Node ${node} runs every task (cluster.enabled=false): its figures are the whole application's.`;

  // Summary cards.
  const sum = document.getElementById('summary');
  sum.replaceChildren();
  const q50 = quantile(0.5, now, before, 'weft_epoch_commit_duration_seconds');
  const q99 = quantile(0.99, now, before, 'weft_epoch_commit_duration_seconds');
  const cnt = now.sum('weft_epoch_commit_duration_seconds_count') || 0;
  const meanAll = cnt > 0 ? now.sum('weft_epoch_commit_duration_seconds_sum') / cnt : null;
  const bad = now.sum('weft_bad_records_total') || 0;
  const parkedKeys = now.sum('weft_parked_keys') || 0;
  const restoring = now.sum('weft_restoring_shards') || 0;
  card(sum, 'node', 'node', 0, node + (clustered ? '' : ' (single)'));
  card(sum, 'guarantee', 'guarantee', eo ? 1 : 0, eo ? 'exactly_once' : 'at_least_once');
  card(sum, 'generation', 'generation · units here', now.sum('weft_generation') || 0,
       `${fmt(now.sum('weft_generation'))} · ${fmt(now.sum('weft_units_active'))}/${fmt(now.sum('weft_units'))}`);
  const procRate = rate(now, before, 'weft_records_processed_total');
  card(sum, 'processed-rate', 'records processed/s', procRate ?? 0, fmtRate(procRate));
  card(sum, 'processed', 'records processed', now.sum('weft_records_processed_total') || 0,
       fmt(now.sum('weft_records_processed_total')));
  if (eo) {
    const epochRate = rate(now, before, 'weft_epochs_committed_total');
    card(sum, 'epochs', 'epochs committed (/s)', now.sum('weft_epochs_committed_total') || 0,
         `${fmt(now.sum('weft_epochs_committed_total'))} (${fmtRate(epochRate)})`);
    card(sum, 'commit-latency', q50 !== null ? 'epoch commit p50 / p99 (last 10 s)' : 'epoch commit, mean',
         q50 ?? meanAll ?? 0, q50 !== null ? `${fmtSeconds(q50)} / ${fmtSeconds(q99)}` : fmtSeconds(meanAll));
    card(sum, 'aborted', 'epochs aborted', now.sum('weft_epochs_aborted_total') || 0,
         fmt(now.sum('weft_epochs_aborted_total')), (now.sum('weft_epochs_aborted_total') || 0) > 0);
  } else {
    card(sum, 'commits', 'offset commits', now.sum('weft_offset_commits_total') || 0,
         fmt(now.sum('weft_offset_commits_total')));
  }
  const lagTotal = (() => { let t = 0; now.each('weft_consumer_lag_records', (s) => { if (s.value > 0) t += s.value; }); return t; })();
  card(sum, 'lag', 'consumer lag (records)', lagTotal, fmt(lagTotal));
  card(sum, 'restores', 'restoring shards · remaining', restoring,
       `${fmt(restoring)} · ${fmt(now.sum('weft_restore_remaining_records'))} ` +
       `(${fmtRate(rate(now, before, 'weft_restore_records_total'))})`, restoring > 0);
  const warming = ((cluster && cluster.units) || []).filter((u) => u.warmup).length;
  card(sum, 'warmups', 'units warming up', warming, fmt(warming), warming > 0);
  card(sum, 'paused', 'partitions paused', now.sum('weft_partitions_paused') || 0,
       fmt(now.sum('weft_partitions_paused')));
  card(sum, 'bad', 'bad records', bad, fmt(bad), bad > 0);
  card(sum, 'parked', 'parked keys · records', parkedKeys,
       `${fmt(parkedKeys)} · ${fmt(now.sum('weft_parked_records'))}`, parkedKeys > 0);

  // Services.
  const owners = ownership(cluster);
  for (const [name, f] of view.figs.services) {
    const w = { service: name };
    const inRate = rate(now, before, 'weft_records_processed_total', w);
    const outRate = rate(now, before, 'weft_records_produced_total', w);
    setFig(f.rates, inRate ?? 0, `in ${fmtRate(inRate)} · out ${fmtRate(outRate)}`);
    const processed = now.sum('weft_records_processed_total', w);
    setFig(f.totals, processed ?? 0,
           processed === null ? 'no task on this node' :
           `processed ${fmt(processed)} · emitted ${fmt(now.sum('weft_records_produced_total', w))}`);
    const b = now.sum('weft_bad_records_total', w) || 0;
    const pk = now.sum('weft_parked_keys', w) || 0;
    const pr = now.sum('weft_parked_records', w) || 0;
    const dl = now.sum('weft_bad_records_total', { service: name, action: 'dead_letter' }) || 0;
    setFig(f.bad, b + pk, b === 0 && pk === 0 ? 'no bad records'
           : `bad ${fmt(b)} (dead-lettered ${fmt(dl)}) · parked ${fmt(pk)} keys, ${fmt(pr)} records`);
    f.bad.setAttribute('class', 'fig' + (b + pk > 0 ? ' bad' : ''));
    for (const st of f.stores) {
      const keys = now.sum('weft_store_keys', { store: st.name });
      setFig(st.text, keys ?? 0, `▤ ${st.name}: ${keys === null ? 'no shard here' : fmt(keys) + ' keys'}`);
    }
    const parts = owners.get(name) || [];
    const byNode = new Map();
    const standbyLags = [];
    now.each('weft_standby_lag_records', (s) => { if (s.labels.service === name) standbyLags.push(s.value); });
    for (const p of parts) byNode.set(p.active, (byNode.get(p.active) || 0) + 1);
    const sb = new Set(parts.flatMap((p) => p.standbys));
    const warm = parts.filter((p) => p.warmup).map((p) => `p${p.p}→${p.warmup}`);
    setFig(f.owners, parts.length, parts.length
      ? 'active: ' + [...byNode].map(([n, k]) => `${n || '(none)'} ×${k}`).join(', ')
      : 'no partition assigned');
    let standby = sb.size ? 'standbys: ' + [...sb].join(', ') : 'no standbys';
    if (standbyLags.length) standby += ` (lag here ≤ ${fmt(Math.max(...standbyLags))})`;
    if (warm.length) standby += ' · warming up ' + warm.join(', ');
    setFig(f.standbys, sb.size, shorten(standby, 44));
    f.standbys.replaceChildren(document.createTextNode(shorten(standby, 44)),
                               el('title', {}, standby));
  }

  // Topics: the lag of this node's consumer on them, what services wrote to them.
  for (const [name, t] of view.figs.topics) {
    let lag = null;
    now.each('weft_consumer_lag_records', (s) => {
      if (s.labels.topic === name && s.value >= 0) lag = (lag || 0) + s.value;
    });
    const inRate = rate(now, before, 'weft_records_produced_total', { topic: name });
    setFig(t.fig, lag ?? -1, `${t.kind}` + (inRate !== null ? ` · in ${fmtRate(inRate)}` : '') +
           (lag !== null ? ` · lag ${fmt(lag)}` : ''));
  }

  // Edges: records/s along each, and for reads the lag behind it.
  for (const { e, text, path } of view.figs.edges) {
    const svc = e.to.startsWith('service:') ? e.to.slice(8) : e.from.slice(8);
    const topic = (e.to.startsWith('topic:') ? e.to : e.from).replace(/^topic:/, '');
    let r = null, label = '';
    if (e.kind === 'writes') {
      r = rate(now, before, 'weft_records_produced_total', { service: svc, topic });
      label = fmtRate(r);
    } else if (e.kind === 'reads') {
      r = rate(now, before, 'weft_records_read_total', { service: svc, topic });
      let lag = null;
      now.each('weft_consumer_lag_records', (s) => {
        if (s.labels.topic === topic && s.value >= 0) lag = (lag || 0) + s.value;
      });
      label = fmtRate(r) + (lag !== null ? ` · lag ${fmt(lag)}` : '');
    } else {
      label = 'lookups';
    }
    setFig(text, r ?? 0, label);
    path.classList.toggle('busy', (r || 0) > 0);
  }

  // Internal topics: changelogs (by the store's service) and dead letters.
  const tbody = document.querySelector('#internal tbody');
  tbody.replaceChildren();
  for (const st of (topo.stores || []).filter((x) => x.changelog && !x.internal)) {
    const r = rate(now, before, 'weft_changelog_records_produced_total', { service: st.service });
    const tr = html('tr', { 'data-topic': st.changelog, 'data-kind': 'changelog' });
    tr.append(html('td', {}, st.changelog), html('td', {}, 'changelog'),
              html('td', {}, `${st.service} · ${st.name}`),
              html('td', { class: 'num', 'data-fig': 'changelog' }, `service's changelogs ${fmtRate(r)}`));
    tbody.appendChild(tr);
  }
  for (const s of topo.services || []) {
    if (!s.deadLetterTopic) continue;
    const n = now.sum('weft_bad_records_total', { service: s.name, action: 'dead_letter' }) || 0;
    const tr = html('tr', { 'data-topic': s.deadLetterTopic, 'data-kind': 'dead-letter' });
    const td = html('td', { class: 'num' + (n > 0 ? ' bad' : ''), 'data-fig': 'dead-letter', 'data-value': String(n) },
                    `${fmt(n)} records`);
    if (n > 0) td.style.color = 'var(--bad)';
    tr.append(html('td', {}, s.deadLetterTopic), html('td', {}, 'dead-letter'),
              html('td', {}, `${s.name} (${s.badRecordPolicy})`), td);
    tbody.appendChild(tr);
  }

  // Nodes and units, from /cluster.
  const mb = document.querySelector('#members tbody');
  mb.replaceChildren();
  for (const m of members) {
    const tr = html('tr', { 'data-member': m.id });
    const link = html('td');
    if (m.http) link.appendChild(html('a', { href: 'http://' + m.http + '/' }, m.http));
    else link.textContent = m.id === node ? location.host : '–';
    tr.append(html('td', {}, m.id + (m.id === node ? ' (this node)' : '')), link,
              html('td', {}, m.connected === false ? 'no' : 'yes'),
              html('td', { class: 'num' }, m.applied !== undefined ? String(m.applied) : (cluster.generation ?? '–')));
    mb.appendChild(tr);
  }
  const ub = document.querySelector('#units tbody');
  ub.replaceChildren();
  for (const u of (cluster && cluster.units) || []) {
    const tr = html('tr', { 'data-unit': String(u.unit) });
    const sbs = (u.standbys || []).map((s) => (s.node || s) + (s.lag !== undefined && s.lag !== null ? ` (${fmt(s.lag)})` : '')).join(', ');
    tr.append(html('td', { class: 'num' }, String(u.unit)), html('td', {}, u.tasks),
              html('td', {}, u.active || '(none)'), html('td', {}, sbs || '–'),
              html('td', {}, u.warmup || ''));
    ub.appendChild(tr);
  }
}

// ---- polling ---------------------------------------------------------------

async function getText(path) {
  const r = await fetch(path, { cache: 'no-store' });
  if (!r.ok) throw new Error(`${path}: HTTP ${r.status}`);
  return r.text();
}

// /metrics and the node's clock when it was read (X-Weft-Time-Ms): rates
// then hold however late or bunched the polls come.
async function fetchMetrics() {
  const r = await fetch('metrics', { cache: 'no-store' });
  if (!r.ok) throw new Error(`metrics: HTTP ${r.status}`);
  const at = Number(r.headers.get('X-Weft-Time-Ms')) || Date.now();
  return { text: await r.text(), at };
}

async function main() {
  const status = document.getElementById('status');
  const svg = document.getElementById('map');
  const view = { topo: null, figs: null };
  const history = []; // scrapes of the last WINDOW_MS, oldest first
  let polls = 0;
  drawLegend(document.getElementById('legend'));
  const poll = async () => {
    try {
      if (!view.topo) {
        view.topo = JSON.parse(await getText('topology'));
        view.figs = drawMap(svg, view.topo);
      }
      const [m, clusterText] = await Promise.all([fetchMetrics(), getText('cluster')]);
      const now = new scrape(parseMetrics(m.text), m.at);
      while (history.length && now.at - history[0].at > WINDOW_MS) history.shift();
      const before = history.length ? history[0] : null;
      let cluster = {};
      try { cluster = JSON.parse(clusterText); } catch (e) { cluster = {}; }
      update(view, now, before, cluster);
      history.push(now);
      ++polls;
      status.dataset.state = 'live';
      status.dataset.polls = String(polls);
      status.textContent = `live · polled ${new Date().toLocaleTimeString()} (every ${POLL_MS} ms)`;
    } catch (err) {
      status.dataset.state = 'error';
      status.textContent = 'not answering: ' + err.message + ' (retrying)';
    }
    setTimeout(poll, POLL_MS);
  };
  poll();
}

main();
