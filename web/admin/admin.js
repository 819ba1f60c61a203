// The admin page: renders /api/admin (docs/api.md#admin) once a second. Read-only, no framework; text is
// set with textContent only (addresses and feed errors come from the outside world).
const REFRESH_MS = 1000;
const main = document.querySelector('main.admin');
const status = document.getElementById('admin-status');

const fmtInt = (n) => (n ?? 0).toLocaleString('en-US');
const fmtAge = (ms) => {
  if (ms === undefined || ms === null) return '—';
  if (ms < 1000) return `${ms} ms`;
  const s = Math.round(ms / 1000);
  if (s < 120) return `${s} s`;
  if (s < 7200) return `${Math.round(s / 60)} min`;
  return `${(s / 3600).toFixed(1)} h`;
};

function cell(text, cls) {
  const td = document.createElement('td');
  td.textContent = text;
  if (cls) td.className = cls;
  return td;
}

function fill(tbodyId, rows, toCells, key) {
  const tbody = document.getElementById(tbodyId);
  const frag = document.createDocumentFragment();
  for (const r of rows) {
    const tr = document.createElement('tr');
    if (key) tr.dataset.key = key(r);
    for (const td of toCells(r)) tr.append(td);
    frag.append(tr);
  }
  tbody.replaceChildren(frag);
}

const kv = (obj) => Object.entries(obj).map(([k, v]) => ({ k, v }));
const kvCells = ({ k, v }) => [cell(k), cell(String(v), typeof v === 'number' ? 'num' : '')];

function render(d) {
  const b = d.broadcast;
  fill('server', kv({
    version: d.server.version, uptime: fmtAge(d.server.uptime_s * 1000), sessions: d.connections.sessions,
    'max connections': d.server.max_connections, addresses: d.connections.addresses, symbols: b.symbols,
    'stale symbols': b.stale_symbols, 'removed symbols': b.removed_symbols, subscriptions: b.subscriptions,
    'frames out': b.frames_out, 'updates out': b.updates_out, 'conflated (all clients)': b.conflated,
    epoch: b.epoch,
  }), kvCells, (r) => r.k);
  fill('transports', Object.entries(d.connections.by_transport), ([t, n]) => [cell(t), cell(fmtInt(n), 'num')],
    ([t]) => t);
  fill('feeds', d.feeds, (f) => [
    cell(f.name), cell(f.type), cell(f.state, `state-${f.state}`), cell(fmtInt(f.updates), 'num'),
    cell(fmtAge(f.last_update_age_ms), 'num'), cell(fmtInt(f.errors), 'num'), cell(fmtInt(f.reconnects), 'num'),
    cell(fmtInt(f.malformed), 'num'),
    cell(f.last_error ? `${f.last_error} (${fmtAge(f.last_error_age_ms)} ago)` : '—', f.last_error ? 'err' : 'muted'),
  ], (f) => f.name);
  fill('slowest', d.slowest_clients, (c) => [
    cell(c.transport), cell(c.address || 'unknown'), cell(fmtAge(c.age_ms), 'num'), cell(fmtInt(c.subscriptions), 'num'),
    cell(fmtInt(c.conflated), 'num'), cell(fmtInt(c.values_out), 'num'), cell(fmtInt(c.frames_out), 'num'),
    cell(c.behind ? 'yes' : 'no'),
  ]);
  fill('addresses', d.connections.by_address, (a) => [
    cell(a.address), cell(fmtInt(a.sessions), 'num'),
    cell(Object.entries(a.by_transport).map(([t, n]) => `${t} ${n}`).join(', ')),
  ], (a) => a.address);
  const h = d.history || {};
  fill('history', kv(Object.fromEntries(Object.entries(h).map(([k, v]) => [k.replaceAll('_', ' '), v]))), kvCells);
  main.dataset.sessions = String(d.connections.sessions);
  main.dataset.refreshes = String(Number(main.dataset.refreshes) + 1);
}

async function refresh() {
  try {
    const r = await fetch('/api/admin', { cache: 'no-store' });
    const body = await r.json();
    if (!r.ok) throw new Error(body.message || `HTTP ${r.status}`);
    render(body);
    status.dataset.state = 'ok';
    status.textContent = `updated ${new Date().toLocaleTimeString()}`;
  } catch (err) {
    status.dataset.state = 'error';
    status.textContent = `cannot read /api/admin: ${err.message}`;
  }
  setTimeout(refresh, REFRESH_MS);
}

refresh();
