// synfin's live page: polls /api/summary about once a second and draws the RFC 9293 Figure 5
// state diagram with live counts and rates, the two waiting legs, and handshake latency.
// Plain ES module, no dependencies; everything it loads comes from synfin itself.
// It only writes text with textContent (addresses never go through innerHTML).

const SVG = 'http://www.w3.org/2000/svg';
const POLL_MS = 1000;
const DETAIL_REFRESH_MS = 3000;
const MAX_ROWS = 500;

/** Node boxes, laid out as in RFC 9293 Figure 5 (centre x, y); CLOSED is drawn twice, as in the figure. */
export const NODE_W = 136;
export const NODE_H = 50;
export const NODES = [
  { id: 'CLOSED', state: 'CLOSED', label: 'CLOSED', x: 450, y: 40 },
  { id: 'LISTEN', state: 'LISTEN', label: 'LISTEN', x: 450, y: 160 },
  { id: 'SYN_RECEIVED', state: 'SYN_RECEIVED', label: 'SYN-RECEIVED', x: 130, y: 290 },
  { id: 'SYN_SENT', state: 'SYN_SENT', label: 'SYN-SENT', x: 770, y: 290 },
  { id: 'ESTABLISHED', state: 'ESTABLISHED', label: 'ESTABLISHED', x: 450, y: 410 },
  { id: 'FIN_WAIT_1', state: 'FIN_WAIT_1', label: 'FIN-WAIT-1', x: 130, y: 530, leg: 'app' },
  { id: 'CLOSE_WAIT', state: 'CLOSE_WAIT', label: 'CLOSE-WAIT', x: 770, y: 530, leg: 'upstream' },
  { id: 'FIN_WAIT_2', state: 'FIN_WAIT_2', label: 'FIN-WAIT-2', x: 130, y: 650, leg: 'app' },
  { id: 'CLOSING', state: 'CLOSING', label: 'CLOSING', x: 450, y: 650 },
  { id: 'LAST_ACK', state: 'LAST_ACK', label: 'LAST-ACK', x: 770, y: 650 },
  { id: 'TIME_WAIT', state: 'TIME_WAIT', label: 'TIME-WAIT', x: 450, y: 750 },
  { id: 'CLOSED_END', state: 'CLOSED', label: 'CLOSED', x: 770, y: 750, alias: true },
];

const TIPS = {
  FIN_WAIT_1: 'synfin sent the app a FIN because the destination closed; once the app ACKs it, the app socket is in CLOSE_WAIT (waiting on the app)',
  FIN_WAIT_2: 'the destination closed; the app acknowledged synfin\'s FIN and its socket sits in CLOSE_WAIT until the app calls close() (waiting on the app)',
  CLOSE_WAIT: 'the app closed first; synfin waits for the destination to close (waiting on the upstream)',
  TIME_WAIT: 'synfin closed toward the app first (the destination closed first); lasts 2×MSL',
  LAST_ACK: 'both sides closed; synfin waits for the app to acknowledge its FIN',
};

/**
 * Every transition, as a polyline from one box edge to another; `label` is the RFC's event /
 * action text. `extra`: taken by the stack but not drawn in the RFC's figure. `stub`: a reset or
 * abort straight to CLOSED (RFC 9293 §3.10.7), drawn as a short dashed arrow ending in ✕.
 */
export const EDGES = [
  { from: 'CLOSED', to: 'LISTEN', pts: [[430, 65], [430, 135]], label: 'passive OPEN', lx: 422, ly: 104, anchor: 'end' },
  { from: 'LISTEN', to: 'CLOSED', pts: [[470, 135], [470, 65]], label: 'CLOSE', lx: 478, ly: 104, anchor: 'start' },
  { from: 'CLOSED', to: 'SYN_SENT', pts: [[518, 28], [825, 28], [825, 265]], label: 'active OPEN · snd SYN', lx: 660, ly: 22 },
  { from: 'SYN_SENT', to: 'CLOSED', pts: [[795, 265], [795, 52], [518, 52]], label: 'CLOSE', lx: 660, ly: 46 },
  { from: 'LISTEN', to: 'SYN_RECEIVED', pts: [[382, 172], [165, 172], [165, 265]], label: 'rcv SYN · snd SYN,ACK', lx: 270, ly: 188 },
  { from: 'LISTEN', to: 'SYN_SENT', pts: [[518, 172], [735, 172], [735, 265]], label: 'SEND · snd SYN', lx: 630, ly: 188 },
  { from: 'SYN_RECEIVED', to: 'LISTEN', pts: [[95, 265], [95, 146], [382, 146]], label: 'rcv RST', lx: 240, ly: 140 },
  { from: 'SYN_SENT', to: 'SYN_RECEIVED', pts: [[702, 282], [198, 282]], label: 'rcv SYN · snd SYN,ACK', lx: 330, ly: 276 },
  { from: 'SYN_SENT', to: 'ESTABLISHED', pts: [[702, 302], [485, 302], [485, 385]], label: 'rcv SYN,ACK · snd ACK', lx: 600, ly: 318 },
  { from: 'SYN_RECEIVED', to: 'ESTABLISHED', pts: [[198, 302], [415, 302], [415, 385]], label: 'rcv ACK of SYN', lx: 300, ly: 318 },
  { from: 'SYN_RECEIVED', to: 'FIN_WAIT_1', pts: [[110, 315], [110, 505]], label: 'CLOSE · snd FIN', lx: 104, ly: 440, anchor: 'end' },
  { from: 'SYN_RECEIVED', to: 'CLOSE_WAIT', pts: [[180, 315], [180, 462], [740, 462], [740, 505]], label: 'rcv FIN · snd ACK', lx: 460, ly: 478, extra: true },
  { from: 'ESTABLISHED', to: 'FIN_WAIT_1', pts: [[382, 420], [160, 420], [160, 505]], label: 'CLOSE · snd FIN', lx: 270, ly: 414 },
  { from: 'ESTABLISHED', to: 'CLOSE_WAIT', pts: [[518, 420], [770, 420], [770, 505]], label: 'rcv FIN · snd ACK', lx: 640, ly: 414 },
  { from: 'FIN_WAIT_1', to: 'FIN_WAIT_2', pts: [[110, 555], [110, 625]], label: 'rcv ACK of FIN', lx: 104, ly: 594, anchor: 'end' },
  { from: 'FIN_WAIT_1', to: 'CLOSING', pts: [[198, 530], [450, 530], [450, 625]], label: 'rcv FIN · snd ACK', lx: 320, ly: 524 },
  { from: 'FIN_WAIT_1', to: 'TIME_WAIT', pts: [[160, 555], [160, 590], [300, 590], [300, 740], [382, 740]], label: 'rcv FIN, ACK of FIN', lx: 235, ly: 584, extra: true },
  { from: 'FIN_WAIT_2', to: 'TIME_WAIT', pts: [[130, 675], [130, 760], [382, 760]], label: 'rcv FIN · snd ACK', lx: 250, ly: 776 },
  { from: 'CLOSING', to: 'TIME_WAIT', pts: [[450, 675], [450, 725]], label: 'rcv ACK of FIN', lx: 458, ly: 704, anchor: 'start' },
  { from: 'CLOSE_WAIT', to: 'LAST_ACK', pts: [[770, 555], [770, 625]], label: 'CLOSE · snd FIN', lx: 778, ly: 594, anchor: 'start' },
  { from: 'LAST_ACK', to: 'CLOSED', pts: [[770, 675], [770, 725]], label: 'rcv ACK of FIN', lx: 778, ly: 704, anchor: 'start' },
  { from: 'TIME_WAIT', to: 'CLOSED', pts: [[518, 750], [702, 750]], label: 'timeout 2MSL', lx: 610, ly: 744 },
  { from: 'SYN_RECEIVED', to: 'CLOSED', pts: [[62, 300], [28, 300]], label: '', lx: 4, ly: 320, anchor: 'start', stub: true },
  { from: 'ESTABLISHED', to: 'CLOSED', pts: [[518, 398], [552, 398]], label: '', lx: 556, ly: 392, anchor: 'start', stub: true },
  { from: 'FIN_WAIT_1', to: 'CLOSED', pts: [[62, 530], [28, 530]], label: '', lx: 4, ly: 550, anchor: 'start', stub: true },
  { from: 'FIN_WAIT_2', to: 'CLOSED', pts: [[62, 650], [28, 650]], label: '', lx: 4, ly: 670, anchor: 'start', stub: true },
  { from: 'CLOSE_WAIT', to: 'CLOSED', pts: [[838, 540], [872, 540]], label: '', lx: 896, ly: 560, anchor: 'end', stub: true },
  { from: 'CLOSING', to: 'CLOSED', pts: [[518, 650], [552, 650]], label: '', lx: 556, ly: 644, anchor: 'start', stub: true },
];

export function edgeKey(from, to) {
  return `${from}>${to}`;
}

/**
 * Transitions per second on each edge between two snapshots (cumulative counts, keyed
 * "FROM>TO"). A counter that went backwards (synfin restarted) counts from zero.
 */
export function edgeRates(prev, cur) {
  const rates = {};
  if (prev === null) return rates;
  const dt = (cur.at - prev.at) / 1000;
  if (!(dt > 0)) return rates;
  for (const key of Object.keys(cur.transitions)) {
    const now = cur.transitions[key];
    const before = prev.transitions[key] ?? 0;
    const d = now >= before ? now - before : now;
    if (d > 0) rates[key] = d / dt;
  }
  return rates;
}

export function fmtRate(r) {
  if (!(r > 0)) return '';
  if (r < 0.1) return '<0.1/s';
  return r < 10 ? `${r.toFixed(1)}/s` : `${Math.round(r)}/s`;
}

export function fmtAge(s) {
  if (s === null || s === undefined || !Number.isFinite(s)) return '–';
  if (s < 10) return `${s.toFixed(1)} s`;
  if (s < 120) return `${Math.round(s)} s`;
  if (s < 7200) return `${Math.floor(s / 60)} min ${Math.round(s % 60)} s`;
  if (s < 172800) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
  return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
}

export function fmtMs(ms) {
  if (!Number.isFinite(ms)) return '–';
  if (ms === 0) return '0';
  if (ms < 1) return `${(ms * 1000).toFixed(0)} µs`;
  if (ms < 100) return `${ms.toFixed(1)} ms`;
  if (ms < 10000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(1)} s`;
}

export function fmtBytes(n) {
  if (!Number.isFinite(n)) return '–';
  if (n < 1024) return `${n} B`;
  const units = ['KiB', 'MiB', 'GiB', 'TiB'];
  let v = n / 1024;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return `${v < 10 ? v.toFixed(1) : Math.round(v)} ${units[u]}`;
}

/** Why a row names no process (appProcessSource), in words. */
export const NO_PROCESS_WHY = {
  not_visible: 'not visible: the app runs in another pid namespace (shareProcessNamespace)',
  not_permitted: 'not permitted: another uid (synfin needs CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH)',
  no_socket: "no socket: the app is not in synfin's network namespace",
  inferred: 'no process: the app closed its socket',
  pending: 'not looked up yet',
};

/** "held by pid 4242 python3, fd 7, for 12 min" (for = how long it has waited), or why no process is named. */
export function heldBy(r) {
  const p = r.appProcess;
  const wait = r.waitingSeconds === null || r.waitingSeconds === undefined ? '' : `, for ${fmtAge(r.waitingSeconds)}`;
  if (p) return `held by pid ${p.pid} ${p.command}, fd ${p.fd}${wait}`;
  return `process unknown (${NO_PROCESS_WHY[r.appProcessSource] ?? r.appProcessSource ?? 'unknown'})`;
}

/**
 * Waiting connections grouped by service (`other` when unnamed) and then by the process holding
 * them: [{ service, count, oldestSeconds, processes: [{ key, pid, command, source, count, oldestSeconds, fds }] }],
 * services and processes with the most connections first.
 */
export function groupWaiting(rows) {
  const services = new Map();
  for (const r of rows) {
    const name = r.service ?? 'other';
    let g = services.get(name);
    if (!g) services.set(name, (g = { service: name, count: 0, oldestSeconds: 0, processes: new Map() }));
    const p = r.appProcess;
    const key = p ? `pid ${p.pid}` : `none:${r.appProcessSource}`;
    let q = g.processes.get(key);
    if (!q) g.processes.set(key, (q = { key, pid: p ? p.pid : null, command: p ? p.command : null, source: r.appProcessSource, count: 0, oldestSeconds: 0, fds: [] }));
    const waited = r.waitingSeconds ?? 0;
    g.count++;
    q.count++;
    if (waited > g.oldestSeconds) g.oldestSeconds = waited;
    if (waited > q.oldestSeconds) q.oldestSeconds = waited;
    if (p) q.fds.push(p.fd);
  }
  const byCount = (a, b) => b.count - a.count || b.oldestSeconds - a.oldestSeconds;
  return [...services.values()]
    .map((g) => ({ ...g, processes: [...g.processes.values()].sort(byCount) }))
    .sort(byCount);
}

/**
 * A connection's states with the time each was entered (ms since the epoch): from its flight
 * record once closed (`states`), else from the live row (opened, and the current state since).
 */
export function stateTimes(row, record, nowMs) {
  if (record && Array.isArray(record.states)) {
    // /api/history: each state with the ISO time it was entered.
    return record.states.map((s) => ({ state: s.state, at: Date.parse(s.at) }));
  }
  const out = [{ state: 'opened', at: nowMs - row.ageSeconds * 1000 }];
  out.push({ state: row.state, at: nowMs - row.stateAgeSeconds * 1000 });
  if (row.waitingSeconds !== null && row.waitingSeconds !== undefined) out.push({ state: `waiting on the ${row.waitingOn}`, at: nowMs - row.waitingSeconds * 1000 });
  return out;
}

// ------------------------------------------------------------------ DOM

function el(tag, attrs, parent, ns) {
  const e = ns === false ? document.createElement(tag) : document.createElementNS(SVG, tag);
  if (attrs) for (const [k, v] of Object.entries(attrs)) if (v !== undefined && v !== null) e.setAttribute(k, String(v));
  if (parent) parent.appendChild(e);
  return e;
}

function html(tag, attrs, parent, text) {
  const e = el(tag, attrs, parent, false);
  if (text !== undefined) e.textContent = text;
  return e;
}

const ui = {
  nodes: new Map(), // state -> [{ g, count }]
  edges: new Map(), // "FROM>TO" -> { g, rate }
};

function drawDiagram(svg) {
  const defs = el('defs', null, svg);
  for (const [id, cls] of [['arrow', 'arrowhead'], ['arrow-active', 'arrowhead active']]) {
    // Sized in user units, so a highlighted (thicker) edge keeps the same arrowhead.
    const m = el('marker', { id, viewBox: '0 0 10 10', refX: 9, refY: 5, markerUnits: 'userSpaceOnUse', markerWidth: 9, markerHeight: 9, orient: 'auto-start-reverse' }, defs);
    el('path', { d: 'M0,0 L10,5 L0,10 z', class: cls }, m);
  }
  const edgeLayer = el('g', { class: 'edges' }, svg);
  for (const e of EDGES) {
    const key = edgeKey(e.from, e.to);
    const g = el('g', { class: `edge${e.extra ? ' extra' : ''}${e.stub ? ' stub' : ''}`, 'data-edge': key, 'data-rate': '0' }, edgeLayer);
    el('title', null, g).textContent = e.stub
      ? `${e.from} → CLOSED: reset or abort (RFC 9293 §3.10.7)`
      : `${e.from} → ${e.to}: ${e.label}${e.extra ? ' (not drawn in RFC 9293 Figure 5)' : ''}`;
    el('polyline', { points: e.pts.map((p) => p.join(',')).join(' '), class: 'line', 'marker-end': e.stub ? null : 'url(#arrow)' }, g);
    if (e.stub) {
      const [x, y] = e.pts[e.pts.length - 1];
      el('path', { d: `M${x - 4},${y - 4} L${x + 4},${y + 4} M${x - 4},${y + 4} L${x + 4},${y - 4}`, class: 'cross' }, g);
    }
    const t = el('text', { x: e.lx, y: e.ly, 'text-anchor': e.anchor ?? 'middle', class: 'elabel' }, g);
    if (e.label) el('tspan', { class: 'ev' }, t).textContent = e.label;
    const rate = el('tspan', { class: 'rate', dx: e.label ? 4 : 0 }, t);
    ui.edges.set(key, { g, rate, line: g.querySelector('polyline'), stub: Boolean(e.stub) });
  }
  const nodeLayer = el('g', { class: 'nodes' }, svg);
  for (const n of NODES) {
    const attrs = {
      class: `node${n.leg ? ` leg-${n.leg}` : ''}`,
      transform: `translate(${n.x - NODE_W / 2},${n.y - NODE_H / 2})`,
      role: 'button',
      tabindex: n.alias ? -1 : 0,
    };
    // The second CLOSED of the figure is a drawing of the same state: it gets no data-state, so
    // [data-state="CLOSED"] finds one node.
    if (n.alias) attrs['data-alias'] = n.state;
    else attrs['data-state'] = n.state;
    const g = el('g', attrs, nodeLayer);
    el('title', null, g).textContent = `${n.state}${TIPS[n.state] ? `: ${TIPS[n.state]}` : ''}. Click to list these connections.`;
    el('rect', { width: NODE_W, height: NODE_H, rx: 6, class: 'box' }, g);
    el('text', { x: NODE_W / 2, y: 18, 'text-anchor': 'middle', class: 'name' }, g).textContent = n.label;
    const count = el('text', { x: NODE_W / 2, y: 41, 'text-anchor': 'middle', class: 'count', 'data-count': '0' }, g);
    count.textContent = '0';
    const list = ui.nodes.get(n.state) ?? [];
    list.push({ g, count });
    ui.nodes.set(n.state, list);
    const open = () => select({ kind: 'state', value: n.state });
    g.addEventListener('click', open);
    g.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        open();
      }
    });
  }
}

// ------------------------------------------------------------------ live state

const live = {
  prev: null, // the previous snapshot (for rates)
  points: [], // handshake points, oldest first
  lastSecond: null, // the last completed second we have points up to
  nowSecond: null,
  windowSeconds: 600,
  failures: 0,
};

function applySnapshot(snap) {
  // synfin restarted (its clock starts again): start the series and the rates afresh.
  if (live.nowSecond !== null && snap.handshakes.nowSecond < live.nowSecond) {
    live.prev = null;
    live.points = [];
    live.lastSecond = null;
  }
  const rates = edgeRates(live.prev, snap);
  live.prev = snap;

  for (const [state, list] of ui.nodes) {
    const n = snap.states[state] ?? 0;
    const oldest = snap.oldestSeconds?.[state] ?? 0;
    for (const { g, count } of list) {
      count.textContent = String(n);
      count.setAttribute('data-count', String(n));
      g.classList.toggle('occupied', n > 0 && state !== 'LISTEN');
      g.setAttribute('data-oldest', String(oldest));
    }
  }
  for (const [key, e] of ui.edges) {
    const r = rates[key] ?? 0;
    e.rate.textContent = fmtRate(r);
    e.g.setAttribute('data-rate', r.toFixed(3));
    e.g.setAttribute('data-total', String(snap.transitions[key] ?? 0));
    e.g.classList.toggle('active', r > 0);
    if (!e.stub) e.line.setAttribute('marker-end', r > 0 ? 'url(#arrow-active)' : 'url(#arrow)');
  }
  drawOther(snap, rates);
  drawLegs(snap);
  drawVerdict(snap.verdict);
  mergePoints(snap.handshakes);
  drawChart();
}

function drawOther(snap, rates) {
  const list = document.getElementById('other-transitions');
  const keys = Object.keys(snap.transitions).filter((k) => !ui.edges.has(k)).sort();
  list.replaceChildren();
  document.getElementById('other').hidden = keys.length === 0;
  for (const k of keys) {
    const li = html('li', { 'data-edge': k }, list, `${k.replace('>', ' → ')}: ${snap.transitions[k]}`);
    const r = rates[k] ?? 0;
    if (r > 0) html('span', { class: 'rate' }, li, ` (${fmtRate(r)})`);
  }
}

function drawLegs(snap) {
  for (const side of ['app', 'upstream']) {
    const leg = snap.waiting[side];
    const box = document.querySelector(`[data-waiting="${side}"]`);
    const n = box.querySelector('.n');
    n.textContent = String(leg.count);
    n.setAttribute('data-count', String(leg.count));
    box.querySelector('.unit').textContent = leg.count === 1 ? 'connection' : 'connections';
    const oldest = box.querySelector('.oldest');
    oldest.textContent = leg.count > 0 ? fmtAge(leg.oldestSeconds) : '–';
    oldest.setAttribute('data-oldest', String(leg.oldestSeconds));
    box.classList.toggle('occupied', leg.count > 0);
    box.classList.toggle('alert', snap.verdict.issues.some((i) => i.kind === `waiting_${side}`));
  }
  const stack = document.getElementById('tw-stack');
  stack.textContent = String(snap.timeWait.stack);
  stack.setAttribute('data-count', String(snap.timeWait.stack));
  const up = document.getElementById('tw-upstream');
  up.textContent = snap.timeWait.upstream === null ? 'unknown' : String(snap.timeWait.upstream);
  up.setAttribute('data-count', snap.timeWait.upstream === null ? '' : String(snap.timeWait.upstream));
}

function drawVerdict(verdict) {
  const v = document.getElementById('verdict');
  v.setAttribute('data-level', verdict.level);
  v.setAttribute('data-issues', verdict.issues.map((i) => i.kind).join(' '));
  v.replaceChildren();
  if (verdict.issues.length === 0) {
    v.textContent = verdict.text;
    return;
  }
  verdict.issues.forEach((issue, i) => {
    if (i > 0) v.append(' · ');
    html('span', { 'data-kind': issue.kind, 'data-count': String(issue.count) }, v, issue.text);
  });
}

function mergePoints(h) {
  live.windowSeconds = h.windowSeconds;
  live.nowSecond = h.nowSecond;
  const fields = h.fields;
  for (const p of h.points) {
    const sec = p[0];
    if (live.lastSecond !== null && sec <= live.lastSecond) continue;
    const o = {};
    fields.forEach((f, i) => {
      o[f] = p[i];
    });
    live.points.push(o);
  }
  live.lastSecond = Math.max(live.lastSecond ?? -Infinity, h.to);
  const oldest = h.nowSecond - h.windowSeconds;
  let drop = 0;
  while (drop < live.points.length && live.points[drop].second <= oldest) drop++;
  if (drop > 0) live.points.splice(0, drop);
}

/** 1, 2, 5 × 10^k at or above v. */
function niceCeil(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function drawChart() {
  const svg = document.getElementById('handshake-chart');
  svg.replaceChildren();
  const X0 = 48;
  const X1 = 630;
  const Y0 = 168;
  const Y1 = 10;
  const end = live.nowSecond ?? 0;
  const start = end - live.windowSeconds;
  const pts = live.points;
  let top = 0;
  for (const p of pts) if (p.ok > 0 && p.p99Ms > top) top = p.p99Ms;
  const yMax = niceCeil(top);
  const x = (sec) => X0 + ((sec - start) / (end - start)) * (X1 - X0);
  const y = (ms) => Y0 - (Math.min(ms, yMax) / yMax) * (Y0 - Y1);

  for (const f of [0, 0.5, 1]) {
    const gy = y(yMax * f);
    el('line', { x1: X0, x2: X1, y1: gy, y2: gy, class: 'grid' }, svg);
    el('text', { x: X0 - 4, y: gy + 4, 'text-anchor': 'end', class: 'axis' }, svg).textContent = fmtMs(yMax * f);
  }
  const minutes = Math.round(live.windowSeconds / 60);
  for (const [sec, label] of [[start, `−${minutes} min`], [start + live.windowSeconds / 2, `−${Math.round(minutes / 2)} min`], [end, 'now']]) {
    el('text', { x: x(sec), y: 188, 'text-anchor': sec === start ? 'start' : sec === end ? 'end' : 'middle', class: 'axis' }, svg).textContent = label;
  }
  // One path per quantile; a second without handshakes breaks the line.
  for (const [field, cls] of [['p99Ms', 'p99'], ['p50Ms', 'p50']]) {
    let d = '';
    let last = null;
    for (const p of pts) {
      if (p.ok === 0) {
        last = null;
        continue;
      }
      const px = x(p.second).toFixed(1);
      const py = y(p[field]).toFixed(1);
      d += last !== null && p.second === last + 1 ? ` L${px},${py}` : ` M${px},${py} l0.01,0`;
      last = p.second;
    }
    if (d) el('path', { d: d.trim(), class: `series ${cls}` }, svg);
  }
  for (const p of pts) {
    if (p.failed > 0) el('line', { x1: x(p.second), x2: x(p.second), y1: Y0, y2: Y0 - 8, class: 'failed' }, svg);
  }
  svg.setAttribute('data-points', String(pts.length));

  const stats = document.getElementById('handshake-stats');
  let ok = 0;
  let failed = 0;
  let max = 0;
  for (const p of pts) {
    if (p.second <= end - 60) continue;
    ok += p.ok;
    failed += p.failed;
    if (p.maxMs > max) max = p.maxMs;
  }
  const latest = [...pts].reverse().find((p) => p.ok > 0);
  if (pts.length === 0) stats.textContent = 'No handshakes in the window.';
  else {
    stats.textContent =
      `Last minute: ${ok} completed, ${failed} failed` +
      (ok > 0 ? `, slowest ${fmtMs(max)}` : '') +
      (latest ? `. Latest second with handshakes: p50 ${fmtMs(latest.p50Ms)}, p99 ${fmtMs(latest.p99Ms)}.` : '.');
  }
}

// ------------------------------------------------------------------ connection list

const detail = { sel: null, timer: null, seq: 0 };

function select(sel) {
  detail.sel = sel;
  for (const list of ui.nodes.values()) for (const { g } of list) g.classList.remove('selected');
  for (const b of document.querySelectorAll('[data-waiting]')) b.classList.remove('selected');
  if (sel.kind === 'state') for (const { g } of ui.nodes.get(sel.value) ?? []) g.classList.add('selected');
  else document.querySelector(`[data-waiting="${sel.value}"]`)?.classList.add('selected');
  document.getElementById('detail').hidden = false;
  document.getElementById('detail-title').textContent =
    sel.kind === 'state' ? `Connections in ${sel.value}` : `Connections waiting on the ${sel.value}`;
  const table = document.getElementById('connections');
  table.setAttribute('data-filter', sel.kind === 'state' ? `state=${sel.value}` : `waitingOn=${sel.value}`);
  table.setAttribute('data-loaded', 'false');
  table.tBodies[0].replaceChildren();
  void loadDetail();
  document.getElementById('detail').scrollIntoView({ block: 'nearest' });
}

function closeDetail() {
  detail.sel = null;
  detail.seq++;
  clearTimeout(detail.timer);
  document.getElementById('detail').hidden = true;
  document.getElementById('conn-detail').hidden = true;
  for (const g of document.querySelectorAll('.selected')) g.classList.remove('selected');
}

async function loadDetail() {
  clearTimeout(detail.timer);
  const sel = detail.sel;
  if (sel === null) return;
  const seq = ++detail.seq;
  const q = sel.kind === 'state' ? `state=${encodeURIComponent(sel.value)}` : `waitingOn=${encodeURIComponent(sel.value)}`;
  const note = document.getElementById('detail-note');
  try {
    // One page of the oldest MAX_ROWS (the API pages in the order connections were opened):
    // the page never asks synfin for a table it would not show.
    const [res, capture] = await Promise.all([fetch(`api/connections?${q}&limit=${MAX_ROWS}`, { cache: 'no-store' }), captureActive()]);
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    const body = await res.json();
    if (seq !== detail.seq) return; // a newer selection or refresh has started
    const rows = body.connections;
    if (sel.kind === 'waiting') rows.sort((a, b) => (b.waitingSeconds ?? 0) - (a.waitingSeconds ?? 0) || b.ageSeconds - a.ageSeconds);
    else rows.sort((a, b) => b.ageSeconds - a.ageSeconds);
    renderRows(rows, capture);
    renderGroups(sel.kind === 'waiting' ? rows : null);
    note.textContent =
      rows.length === 0
        ? 'None right now.'
        : body.next
          ? `The ${rows.length} oldest connections (more: /api/connections?${q}&cursor=${body.next}).`
          : `${rows.length} connection${rows.length === 1 ? '' : 's'}, oldest first.`;
  } catch (err) {
    if (seq !== detail.seq) return;
    note.textContent = `Could not load the connections: ${err.message}`;
  }
  document.getElementById('connections').setAttribute('data-loaded', 'true');
  if (detail.sel === sel) detail.timer = setTimeout(loadDetail, DETAIL_REFRESH_MS);
}

/** Waiting connections by service and by the process holding them (above the table). */
function renderGroups(rows) {
  const box = document.getElementById('groups');
  box.replaceChildren();
  box.hidden = rows === null || rows.length === 0;
  if (box.hidden) return;
  for (const g of groupWaiting(rows)) {
    const sec = html('div', { class: 'group', 'data-service': g.service, 'data-count': String(g.count) }, box);
    html('h3', null, sec, `${g.service}: ${g.count} connection${g.count === 1 ? '' : 's'}, oldest ${fmtAge(g.oldestSeconds)}`);
    const ul = html('ul', null, sec);
    for (const p of g.processes) {
      const text =
        p.pid !== null
          ? `held by pid ${p.pid} ${p.command}: ${p.count} connection${p.count === 1 ? '' : 's'} (fd ${p.fds.slice(0, 8).join(', ')}${p.fds.length > 8 ? ', …' : ''}), for up to ${fmtAge(p.oldestSeconds)}`
          : `${p.count} connection${p.count === 1 ? '' : 's'}, process unknown (${NO_PROCESS_WHY[p.source] ?? p.source})`;
      html('li', { 'data-pid': p.pid === null ? '' : String(p.pid), 'data-source': p.source, 'data-count': String(p.count) }, ul, text);
    }
  }
}

/** One connection's states with their times, and its packets (a pcap, when capture is on). */
async function showConnection(row) {
  const box = document.getElementById('conn-detail');
  box.hidden = false;
  box.setAttribute('data-id', String(row.id));
  box.replaceChildren();
  html('h3', null, box, `Connection ${row.id}: ${row.client} → ${row.destination}`);
  html('p', { class: 'held' }, box, heldBy(row));
  const list = html('ol', { class: 'states' }, box);
  const draw = (record) => {
    list.replaceChildren();
    const now = Date.now();
    for (const s of stateTimes(row, record, now)) {
      html('li', { 'data-state': s.state }, list, `${s.state} — ${new Date(s.at).toLocaleTimeString()} (${fmtAge((now - s.at) / 1000)} ago)`);
    }
  };
  draw(null);
  const pcap = html('a', { href: `api/connections/${encodeURIComponent(row.id)}/pcap`, download: `synfin-${row.id}.pcap` }, box, 'packets (pcap, while capture is on)');
  pcap.className = 'pcap';
  // Closed since the list was loaded: its flight record has every state with its time.
  try {
    const res = await fetch(`api/history?limit=1000`, { cache: 'no-store' });
    if (!res.ok) return;
    const body = await res.json();
    const rec = (body.connections ?? []).find((h) => h.id === row.id);
    if (rec && box.getAttribute('data-id') === String(row.id)) draw(rec);
  } catch {
    // no history on this synfin: the live row is all there is
  }
}

/** Whether the capture ring is on (GET /api/capture): then each row links to its connection's pcap. */
async function captureActive() {
  try {
    const res = await fetch('api/capture', { cache: 'no-store' });
    return res.ok && (await res.json()).active === true;
  } catch {
    return false;
  }
}

function renderRows(rows, capture = false) {
  const tbody = document.getElementById('connections').tBodies[0];
  const frag = document.createDocumentFragment();
  for (const r of rows.slice(0, MAX_ROWS)) {
    const tr = html('tr', { 'data-id': String(r.id), 'data-state': r.state }, frag);
    tr.addEventListener('click', () => void showConnection(r));
    const cells = [
      String(r.id),
      r.client,
      r.destination,
      r.state,
      r.appState + (r.appStateSource === 'inferred' ? '*' : ''),
      r.upstreamState ?? '–',
      r.waitingOn ?? '–',
      r.waitingSeconds === null ? '–' : fmtAge(r.waitingSeconds),
      fmtAge(r.ageSeconds),
      fmtAge(r.stateAgeSeconds),
      fmtAge(r.idleSeconds),
      fmtBytes(r.bytesIn),
      fmtBytes(r.bytesOut),
      r.service ?? 'other',
      heldBy(r),
    ];
    const names = ['id', 'client', 'destination', 'state', 'appState', 'upstreamState', 'waitingOn', 'waitingSeconds', 'ageSeconds', 'stateAgeSeconds', 'idleSeconds', 'bytesIn', 'bytesOut', 'service', 'appProcess'];
    cells.forEach((text, i) => html('td', { 'data-field': names[i] }, tr, text));
    if (r.appStateSource === 'inferred') tr.cells[4].title = 'inferred from the segments exchanged';
    if (capture) {
      const idCell = tr.cells[0];
      idCell.textContent = '';
      html('a', { href: `api/connections/${r.id}/pcap`, download: `synfin-connection-${r.id}.pcap`, title: 'its packets in the capture ring (pcap)' }, idCell, String(r.id));
    }
  }
  tbody.replaceChildren(frag);
}

// ------------------------------------------------------------------ polling

let pollTimer = null;

async function poll() {
  clearTimeout(pollTimer);
  if (document.hidden) return; // resumed by visibilitychange
  const status = document.getElementById('status');
  try {
    const q = live.lastSecond === null ? '' : `?since=${live.lastSecond}`;
    const res = await fetch(`api/summary${q}`, { cache: 'no-store' });
    if (!res.ok) throw new Error(`HTTP ${res.status}`);
    applySnapshot(await res.json());
    live.failures = 0;
    status.textContent = 'live';
    status.setAttribute('data-status', 'live');
  } catch (err) {
    live.failures++;
    status.textContent = `not updating (${err.message}); retrying`;
    status.setAttribute('data-status', 'stale');
  }
  // Back off while synfin is unreachable, up to 5 s.
  pollTimer = setTimeout(poll, Math.min(5000, POLL_MS * (1 + live.failures)));
}

function start() {
  drawDiagram(document.getElementById('diagram'));
  drawChart();
  for (const box of document.querySelectorAll('[data-waiting]')) {
    const open = () => select({ kind: 'waiting', value: box.getAttribute('data-waiting') });
    box.addEventListener('click', open);
    box.addEventListener('keydown', (ev) => {
      if (ev.key === 'Enter' || ev.key === ' ') {
        ev.preventDefault();
        open();
      }
    });
  }
  document.getElementById('detail-close').addEventListener('click', closeDetail);
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) void poll();
  });
  void poll();
}

if (typeof document !== 'undefined') {
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
  else start();
}
