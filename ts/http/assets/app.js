// monque dashboard: vanilla ES module, no build step, relative URLs only.
/* Stable hooks for browser tests:
  #live "live"|"polling" · #readonly-badge (body.readonly hides every [data-action]) · #version · #refresh-btn
  #health[data-healthy=true|false|unknown] + #health-text "N instances"|"unreachable" · #help-btn
  #names (tbody): tr[data-name][data-paused]; count buttons [data-name][data-status] (text = the number; click
    filters the jobs); button[data-filter-name]; .paused-badge; #paused-summary;
    button[data-action=pause|resume|redrive][data-name]; td[data-spark=<name>] (svg.sparkline | "collecting…")
  #filter-name (select, "" = all) · #filter-group (hidden unless a group is picked) #filter-group-name
    #filter-group-clear · button[data-status-filter=<status>|""][aria-pressed] · #filter-after
    #filter-before (datetime-local) · #sort-by · #sort-dir · #page-size · #filter-clear
  #bulk (only with a name/status filter): button[data-action=bulk-retry|bulk-cancel|bulk-delete]
  #jobs (tbody): tr[data-id] (.sel + aria-selected when selected), cells [data-field=status|name|id|priority|
    createdAt|next|failCount|failReason] · #prev-page #next-page #page-info
  #job-detail[data-id] (hidden when closed): [data-field=status|name] in its header, [data-field=<job field>] for
    each present field (failReason, failStack, data, result, progress, attempts table, dependsOn, traceContext, dates…);
    #dep-graph g[data-dep=<id>][data-status]; button[data-action=retry|cancel|run-now|reschedule|priority|delete]
    (disabled by status); #reschedule-at #priority-value #detail-close
  #groups-section (hidden unless the name filter's name has groups): #groups-name #groups-count; #groups (tbody):
    tr[data-group][data-paused][aria-current when it is the group filter], button[data-filter-group] (filters the
    jobs to the group), cells [data-field=pending|processing|completed|failed|oldestDue|running|servedAt],
    .paused-badge, button[data-action=pause-group|resume-group][data-name][data-group]
  #schedules, #instances (tbody): tr[data-id] · #confirm: #confirm-text, button[data-confirm=yes|no]
  #toast: .msg.ok|.msg.err[data-code] · #help */

const STATUSES = ['waiting', 'pending', 'processing', 'completed', 'failed', 'cancelled'];
const WIN = 10, MIN = 60000, MAX_DEPS = 25;
const ALLOWED = { retry: ['failed', 'cancelled'], cancel: ['pending', 'processing', 'waiting'], 'run-now': ['pending'], reschedule: ['pending'], priority: ['pending'] };

const $ = (s, r = document) => r.querySelector(s);
const $$ = (s, r = document) => [...r.querySelectorAll(s)];
const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const enc = encodeURIComponent;
const num = (v) => (Number.isFinite(+v) ? +v : 0);
const plural = (n, w) => `${n} ${w}${n === 1 ? '' : 's'}`;
const trunc = (s, n) => { s = String(s ?? ''); return s.length > n ? s.slice(0, n - 1) + '…' : s; };
const shortId = (id) => { id = String(id ?? ''); return id.length > 12 ? '…' + id.slice(-8) : id; };
const stClass = (s) => 'st-' + (STATUSES.includes(s) ? s : 'other');
const pill = (s) => `<span class="pill ${stClass(s)}">${esc(s || '?')}</span>`;
const isField = (el) => el && (el.isContentEditable || /^(INPUT|SELECT|TEXTAREA)$/.test(el.tagName));
const stw = (st) => (st.length ? st.join('/') + ' ' : '');
const parse = (s) => { try { return JSON.parse(s); } catch { return null; } };
// Live updates patch a table in place: an unchanged row or cell keeps its node, so a button
// under the pointer (or with focus) is not swapped out between mousedown and click.
function patchRows(tb, html) {
  const next = document.createElement('tbody');
  next.innerHTML = html;
  const fresh = [...next.children], old = [...tb.children];
  if (fresh.length !== old.length) { tb.replaceChildren(...fresh); return; }
  fresh.forEach((row, i) => {
    const cur = old[i];
    if (cur.isEqualNode(row)) return;
    if (cur.cells.length !== row.cells.length || (cur.dataset.name ?? cur.dataset.id) !== (row.dataset.name ?? row.dataset.id)) { cur.replaceWith(row); return; }
    for (const a of [...cur.attributes]) if (!row.hasAttribute(a.name)) cur.removeAttribute(a.name);
    for (const a of [...row.attributes]) if (cur.getAttribute(a.name) !== a.value) cur.setAttribute(a.name, a.value);
    [...row.cells].forEach((cell, j) => { if (!cur.cells[j].isEqualNode(cell)) cur.cells[j].replaceWith(cell); });
  });
}

const S = {
  readOnly: true, // until api/capabilities says otherwise
  names: [], namesAt: 0, countsKey: '', byName: {}, hist: new Map(), // name -> [{ t, c: counts.completed }]
  filter: { name: '', group: '', status: [], after: '', before: '', sortBy: 'createdAt', sort: 'desc', limit: 50 },
  groups: new Map(), // group -> counts, of the filtered name
  page: { cursor: null, direction: 'forward' }, jobs: [], paging: {}, sel: null, selIdx: 0,
  detailId: null, detail: null, detailKey: '', lastDetail: 0, deps: new Map(), mode: '', poll: 0, stale: false,
};

// ---------- formatting ----------
function rel(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '—';
  const d = (t - Date.now()) / 1000, a = Math.abs(d);
  if (a < 1.5) return 'just now';
  const s = a < 60 ? Math.round(a) + 's' : a < 3600 ? Math.round(a / 60) + 'm' : a < 86400 ? Math.round(a / 3600) + 'h' : Math.round(a / 86400) + 'd';
  return d > 0 ? 'in ' + s : s + ' ago';
}
const fmtAbs = (iso) => { const d = new Date(iso); return Number.isNaN(+d) ? String(iso ?? '') : d.toLocaleString(); };
const relHtml = (iso) => (iso ? `<time class="rel" datetime="${esc(iso)}" title="${esc(fmtAbs(iso) + ' · ' + iso)}">${esc(rel(iso))}</time>` : '<span class="muted">—</span>');
function fmtMs(ms) {
  if (ms == null || !Number.isFinite(+ms)) return '—';
  ms = +ms;
  if (ms < 1000) return Math.round(ms) + ' ms';
  if (ms < 60000) return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + ' s';
  const s = Math.round(ms / 1000);
  return s < 3600 ? `${Math.floor(s / 60)}m ${s % 60}s` : `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}
const fmtRepeat = (r) => (!r ? '—' : r.cron ? `<code>${esc(r.cron)}</code>`
  : r.every != null ? 'every ' + esc(typeof r.every === 'number' ? fmtMs(r.every) : r.every) : esc(JSON.stringify(r)));
function toLocalInput(iso) {
  const d = new Date(iso), p = (n) => String(n).padStart(2, '0');
  return !iso || Number.isNaN(+d) ? '' : `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}
const isoOf = (v) => { const d = new Date(v); return v && !Number.isNaN(+d) ? d.toISOString() : ''; };

// ---------- API, toasts, confirm ----------
async function api(path, opts = {}) {
  const init = opts.method
    ? { method: opts.method, headers: { 'Content-Type': 'application/json', Accept: 'application/json' }, body: JSON.stringify(opts.body ?? {}) }
    : { headers: { Accept: 'application/json' }, cache: 'no-store' };
  let res;
  try { res = await fetch(path, init); } catch (e) {
    throw Object.assign(new Error('Cannot reach the server (' + (e?.message || e) + ')'), { status: 0, code: 'NETWORK_ERROR' });
  }
  const body = parse(await res.text().catch(() => ''));
  if (!res.ok) throw Object.assign(new Error(body?.message || res.statusText || 'Request failed'), { status: res.status, code: body?.code || 'HTTP_' + res.status, body });
  return body;
}
const post = (path, body) => api(path, { method: 'POST', body });

function toast(msg, code = '') {
  const box = $('#toast'), key = code + '|' + msg;
  let el = $$('.msg', box).find((m) => m.dataset.key === key);
  if (!el) {
    el = document.createElement('div');
    el.className = 'msg ' + (code ? 'err' : 'ok');
    el.dataset.key = key;
    if (code) el.dataset.code = code;
    el.setAttribute('role', code ? 'alert' : 'status');
    el.innerHTML = (code ? `<b class="code">${esc(code)}</b>` : '') + `<span class="txt">${esc(msg)}</span><button type="button" class="x" aria-label="Dismiss">×</button>`;
    box.append(el);
    while (box.children.length > 4) box.firstElementChild.remove();
  }
  clearTimeout(el._t);
  el._t = setTimeout(() => el.remove(), code ? 12000 : 5000);
}
const showError = (e) => toast(e?.message || String(e), e?.code || 'ERROR');

let confirmResolve = null, confirmFocus = null;
function confirmBox(text, { yes = 'Confirm', no = 'Cancel', danger = false } = {}) {
  confirmResolve?.(false);
  const d = $('#confirm'), y = $('[data-confirm="yes"]'), n = $('[data-confirm="no"]');
  $('#confirm-text').textContent = text;
  y.textContent = yes; n.textContent = no;
  y.classList.toggle('danger', danger);
  confirmFocus = document.activeElement;
  d.hidden = false;
  (danger ? n : y).focus();
  return new Promise((res) => { confirmResolve = res; });
}
function closeConfirm(v) {
  if ($('#confirm').hidden) return;
  $('#confirm').hidden = true;
  const r = confirmResolve; confirmResolve = null;
  if (confirmFocus?.isConnected) confirmFocus.focus();
  r?.(v);
}
async function act(question, fn, ok, opts) {
  if (S.readOnly || !(await confirmBox(question, opts))) return;
  try { const r = await fn(); toast(typeof ok === 'function' ? ok(r) : ok); } catch (e) { showError(e); }
  refresh();
}

// ---------- names overview + sparkline ----------
function record(names, t = Date.now()) {
  for (const n of names) {
    let h = S.hist.get(n.name);
    if (!h) S.hist.set(n.name, (h = []));
    h.push({ t, c: num(n.counts?.completed) });
    while (h.length > 2 && h[1].t < t - (WIN + 1) * MIN) h.shift();
  }
  for (const k of S.hist.keys()) if (!names.some((n) => n.name === k)) S.hist.delete(k);
}
// completed per minute over each of the last WIN minutes; a delta is spread over its sampling interval
function buckets(h, now) {
  const start = now - WIN * MIN, b = new Array(WIN).fill(0);
  for (let i = 1; i < h.length; i++) {
    const z = h[i], d = z.c - h[i - 1].c, a = Math.min(h[i - 1].t, z.t - 1);
    if (d <= 0 || z.t <= start) continue; // a drop (deletions, retention) counts as none
    for (let k = 0; k < WIN; k++) {
      const bs = start + k * MIN, ov = Math.min(bs + MIN, z.t) - Math.max(bs, a);
      if (ov > 0) b[k] += (d * ov) / (z.t - a);
    }
  }
  return b.map(Math.round);
}
function spark(name) {
  const h = S.hist.get(name);
  if (!h || h.length < 2) return '<span class="muted">collecting…</span>';
  const b = buckets(h, Date.now()), max = Math.max(...b, 1), W = 100, H = 22;
  const pts = b.map((v, i) => `${((i * W) / (WIN - 1)).toFixed(1)},${(H - 1 - (v / max) * (H - 4)).toFixed(1)}`).join(' ');
  return `<svg class="sparkline" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="completed per minute">`
    + `<title>completed/min, last ${WIN} min: ${b.join(', ')}</title><polygon class="area" points="0,${H} ${pts} ${W},${H}"/>`
    + `<polyline class="line" points="${pts}"/></svg><span class="rate">${b[WIN - 1]}/min</span>`;
}
function countOf(name, statuses, group) {
  if (group) {
    const c = S.groups.get(group) || {};
    return statuses.length ? statuses.reduce((a, s) => a + num(c[s]), 0) : STATUSES.reduce((a, s) => a + num(c[s]), 0);
  }
  let n = 0;
  for (const x of S.names) {
    if (name && x.name !== name) continue;
    const c = x.counts || {};
    n += statuses.length ? statuses.reduce((a, s) => a + num(c[s]), 0) : num(c.total);
  }
  return n;
}
function renderNames() {
  if (!S.namesAt) return;
  const tb = $('#names'), f = document.activeElement;
  const refocus = tb.contains(f) && f !== tb ? ['name', 'status', 'action', 'filterName'].filter((k) => f.dataset[k] != null)
    .map((k) => `[data-${k.replace(/[A-Z]/g, (c) => '-' + c.toLowerCase())}="${CSS.escape(f.dataset[k])}"]`).join('') : '';
  patchRows(tb, !S.names.length ? '<tr class="empty"><td colspan="10">No jobs yet.</td></tr>' : S.names.map((n) => {
    const c = n.counts || {}, nm = esc(n.name), p = !!n.paused;
    const counts = STATUSES.map((s) => `<td class="num"><button type="button" class="count ${stClass(s)}${num(c[s]) ? '' : ' zero'}" data-name="${nm}" data-status="${s}">${num(c[s])}</button></td>`).join('');
    const acts = S.readOnly ? '' : `<button type="button" data-action="${p ? 'resume' : 'pause'}" data-name="${nm}">${p ? 'Resume' : 'Pause'}</button>`
      + (num(c.failed) ? ` <button type="button" class="warn" data-action="redrive" data-name="${nm}">Redrive</button>` : '');
    return `<tr data-name="${nm}" data-paused="${p}"${p ? ' class="paused"' : ''}><th><button type="button" class="link" data-filter-name="${nm}">${nm}</button>`
      + `${p ? '<span class="badge paused-badge">paused</span>' : ''}</th>${counts}<td class="num total">${num(c.total)}</td>`
      + `<td class="spark" data-spark="${nm}">${spark(n.name)}</td><td class="acts">${acts}</td></tr>`;
  }).join(''));
  if (refocus) $(`#names ${refocus}`)?.focus();
  const paused = S.names.filter((n) => n.paused).map((n) => n.name);
  $('#paused-summary').textContent = paused.length ? 'Paused: ' + paused.join(', ') : '';
}
function renderNameSelect() {
  const sel = $('#filter-name'), cur = S.filter.name, names = S.names.map((n) => n.name);
  if (cur && !names.includes(cur)) names.push(cur);
  if (sel.dataset.key !== names.join('\n')) {
    sel.dataset.key = names.join('\n');
    sel.innerHTML = '<option value="">All names</option>' + names.map((n) => `<option value="${esc(n)}">${esc(n)}</option>`).join('');
  }
  sel.value = cur;
}
function applyNames(names, manual) {
  S.names = Array.isArray(names) ? names : [];
  S.namesAt = Date.now();
  record(S.names);
  const key = JSON.stringify(S.names.map((n) => [n.name, n.paused, n.counts]));
  const prev = S.byName, first = !S.countsKey, changed = key !== S.countsKey;
  S.countsKey = key;
  S.byName = Object.fromEntries(S.names.map((n) => [n.name, JSON.stringify([n.paused, n.counts])]));
  renderNames();
  renderNameSelect();
  renderBulk();
  renderPageInfo();
  if (changed && !manual && !first) {
    scheduleJobs();
    const dn = S.detail?.name;
    if (!dn || prev[dn] !== S.byName[dn]) scheduleDetail();
  }
}
const loadNames = (manual) => api('api/names').then((n) => applyNames(n, manual), showError);

// ---------- filters + jobs table ----------
function syncFilters() {
  const f = S.filter;
  renderNameSelect();
  $('#filter-group').hidden = !f.group;
  $('#filter-group-name').textContent = f.group;
  for (const b of $$('[data-status-filter]')) {
    const s = b.dataset.statusFilter;
    b.setAttribute('aria-pressed', String(s ? f.status.includes(s) : !f.status.length));
  }
  $('#filter-after').value = f.after;
  $('#filter-before').value = f.before;
  $('#sort-by').value = f.sortBy;
  $('#sort-dir').value = f.sort;
  $('#page-size').value = String(f.limit);
}
function setFilter(patch) {
  // A group belongs to its name: another name shows every group again.
  if ('name' in patch && patch.name !== S.filter.name && !('group' in patch)) patch = { ...patch, group: '' };
  Object.assign(S.filter, patch);
  S.page = { cursor: null, direction: 'forward' }; // a cursor belongs to its filter and sort
  syncFilters();
  renderBulk();
  loadJobs();
}
function renderBulk() {
  const f = S.filter, box = $('#bulk');
  box.hidden = S.readOnly || !(f.name || f.group || f.status.length);
  $('#bulk-scope').textContent = `All ${stw(f.status)}jobs of ${f.name || 'every name'}${f.group ? ` in group ${f.group}` : ''} (≈${countOf(f.name, f.status, f.group)}):`;
}
let jobsSeq = 0, jobsTimer = 0, lastJobs = 0;
async function loadJobs() {
  const seq = ++jobsSeq, f = S.filter, q = new URLSearchParams(), sec = $('#jobs-section');
  lastJobs = Date.now();
  if (f.name) q.set('name', f.name);
  if (f.group) q.set('group', f.group);
  if (f.status.length) q.set('status', f.status.join(','));
  if (isoOf(f.after)) q.set('newerThan', isoOf(f.after));
  if (isoOf(f.before)) q.set('olderThan', isoOf(f.before));
  q.set('limit', f.limit); q.set('sortBy', f.sortBy); q.set('sort', f.sort);
  if (S.page.cursor) { q.set('cursor', S.page.cursor); q.set('direction', S.page.direction); }
  sec.setAttribute('aria-busy', 'true');
  try {
    const r = await api('api/jobs?' + q);
    if (seq !== jobsSeq) return;
    if (!r?.jobs?.length && S.page.cursor) { // the page emptied: back to the first one
      S.page = { cursor: null, direction: 'forward' };
      return loadJobs();
    }
    S.jobs = r?.jobs || [];
    S.paging = r || {};
    renderJobs();
    loadGroups();
  } catch (e) {
    if (seq === jobsSeq) showError(e);
  } finally {
    if (seq === jobsSeq) sec.removeAttribute('aria-busy');
  }
}
// ---------- groups of the filtered name ----------
const MAX_GROUP_ROWS = 100;
let groupsSeq = 0;
async function loadGroups() {
  const seq = ++groupsSeq, name = S.filter.name, sec = $('#groups-section');
  if (!name) { sec.hidden = true; return; }
  try {
    const list = await api(`api/names/${enc(name)}/groups`);
    if (seq !== groupsSeq) return;
    S.groups = new Map((list || []).map((g) => [g.group, g.counts || {}]));
    if (!list?.length) { sec.hidden = true; return; }
    // Most waiting work first: the groups an operator looks at.
    const rows = list.slice().sort((a, b) => num(b.counts?.pending) - num(a.counts?.pending) || String(a.group).localeCompare(String(b.group)));
    $('#groups-name').textContent = name;
    $('#groups-count').textContent = rows.length > MAX_GROUP_ROWS ? `(top ${MAX_GROUP_ROWS} of ${rows.length})` : `(${rows.length})`;
    patchRows($('#groups'), rows.slice(0, MAX_GROUP_ROWS).map((g) => {
      const c = g.counts || {}, act = g.paused ? 'resume-group' : 'pause-group';
      const cur = g.group === S.filter.group ? ' aria-current="true"' : '';
      return `<tr data-group="${esc(g.group)}" data-paused="${g.paused}"${cur}><th scope="row"><button type="button" class="link" data-filter-group="${esc(g.group)}" title="Show this group's jobs">${esc(g.group)}</button>${g.paused ? '<span class="badge paused-badge">paused</span>' : ''}</th>`
        + ['pending', 'processing', 'completed', 'failed'].map((k) => `<td class="num" data-field="${k}">${num(c[k])}</td>`).join('')
        + `<td data-field="oldestDue">${g.oldestDue ? relHtml(g.oldestDue) : '—'}</td><td class="num" data-field="running">${num(g.running)}</td>`
        + `<td data-field="servedAt">${g.servedAt ? relHtml(g.servedAt) : '—'}</td>`
        + `<td><button type="button" data-action="${act}" data-name="${esc(name)}" data-group="${esc(g.group)}">${g.paused ? 'Resume' : 'Pause'}</button></td></tr>`;
    }).join(''));
    sec.hidden = false;
  } catch (e) {
    if (seq === groupsSeq) showError(e);
  }
}
function scheduleJobs() {
  if (document.hidden) { S.stale = true; return; }
  jobsTimer ||= setTimeout(() => { jobsTimer = 0; loadJobs(); }, Math.max(0, 1500 - (Date.now() - lastJobs)));
}
function nextCell(j) {
  const lbl = (t, iso) => `<span class="muted">${t}</span> ${relHtml(iso)}`;
  if (j.status === 'completed') return lbl('done', j.completedAt || j.updatedAt);
  if (j.status === 'failed' || j.status === 'cancelled') return lbl(j.status, j.updatedAt);
  if (j.status === 'processing') return lbl('started', j.lockedAt || j.updatedAt);
  return relHtml(j.nextRunAt);
}
const rowHtml = (j) => `<tr data-id="${esc(j.id)}" tabindex="-1"${j.id === S.sel ? ' class="sel" aria-selected="true"' : ''}>`
  + `<td data-field="status">${pill(j.status)}</td><td data-field="name">${esc(j.name)}</td>`
  + `<td data-field="id" class="mono" title="${esc(j.id)}">${esc(shortId(j.id))}</td><td data-field="priority" class="num">${esc(j.priority ?? 0)}</td>`
  + `<td data-field="createdAt">${relHtml(j.createdAt)}</td><td data-field="next">${nextCell(j)}</td>`
  + `<td data-field="failCount" class="num${num(j.failCount) ? ' bad' : ''}">${num(j.failCount)}</td>`
  + `<td data-field="failReason" class="reason" title="${esc(j.failReason)}"><span>${esc(trunc(j.failReason, 160))}</span></td></tr>`;
function renderJobs() {
  const tb = $('#jobs'), a = document.activeElement, hadFocus = tb.contains(a) && a.tagName === 'TR';
  patchRows(tb, S.jobs.length ? S.jobs.map(rowHtml).join('') : '<tr class="empty"><td colspan="8">No jobs match these filters.</td></tr>');
  if (hadFocus && S.sel) rowEl(S.sel)?.focus({ preventScroll: true });
  $('#next-page').disabled = !(S.paging.hasNext && S.paging.nextCursor);
  $('#prev-page').disabled = !(S.paging.hasPrev && S.paging.prevCursor);
  renderPageInfo();
}
function renderPageInfo() {
  const f = S.filter;
  $('#page-info').textContent = plural(S.jobs.length, 'job') + ' on this page' + (f.after || f.before ? '' : ` · ≈${countOf(f.name, f.status, f.group)} matching`);
}
const rowEl = (id) => $(`#jobs tr[data-id="${CSS.escape(id)}"]`);
function select(id, scroll) {
  S.sel = id;
  const i = S.jobs.findIndex((j) => j.id === id);
  if (i >= 0) S.selIdx = i;
  for (const tr of $$('#jobs tr.sel')) { tr.classList.remove('sel'); tr.removeAttribute('aria-selected'); }
  const tr = id && rowEl(id);
  if (!tr) return;
  tr.classList.add('sel');
  tr.setAttribute('aria-selected', 'true');
  if (scroll) tr.scrollIntoView({ block: 'nearest' });
}
function move(d) {
  const n = S.jobs.length;
  if (!n) return;
  let i = S.jobs.findIndex((j) => j.id === S.sel);
  // a selected job that left the page keeps its place: continue from its last index
  i = i >= 0 ? Math.max(0, Math.min(n - 1, i + d)) : S.sel ? Math.min(S.selIdx, n - 1) : d > 0 ? 0 : n - 1;
  select(S.jobs[i].id, true);
  if (S.detailId && S.detailId !== S.sel) openDetail(S.sel, false);
}
function page(direction) {
  const cursor = direction === 'forward' ? S.paging.nextCursor : S.paging.prevCursor;
  if (!cursor) return;
  S.page = { cursor, direction };
  S.sel = null; S.selIdx = 0;
  loadJobs();
}

// ---------- job detail ----------
let detailSeq = 0, detailTimer = 0;
function openDetail(id, focus = true) {
  const p = $('#job-detail');
  if (S.detailId !== id) {
    Object.assign(S, { detailId: id, detail: null, detailKey: '' });
    $('#detail-status').innerHTML = '';
    $('#detail-name').textContent = shortId(id);
    $('#detail-body').innerHTML = '<p class="muted">Loading…</p>';
    setActions(null);
  }
  p.dataset.id = id;
  p.hidden = false;
  document.body.classList.add('detail-open');
  if (focus) p.focus({ preventScroll: true });
  loadDetail(true);
}
function closeDetail() {
  const p = $('#job-detail');
  p.hidden = true;
  delete p.dataset.id;
  document.body.classList.remove('detail-open');
  S.detailId = S.detail = null;
  detailSeq++;
  clearTimeout(detailTimer); detailTimer = 0;
  if (S.sel) rowEl(S.sel)?.focus({ preventScroll: true });
}
async function loadDetail(first) {
  const id = S.detailId, seq = ++detailSeq;
  if (!id) return;
  S.lastDetail = Date.now();
  try {
    const j = await api('api/jobs/' + enc(id));
    if (seq !== detailSeq) return;
    S.detail = j;
    renderDetail(j, first);
    if (j.dependsOn?.length) loadDeps(j, seq);
    // A job due or running now is about to change. The counts' live updates usually say
    // when, but a manual refresh can read them after the change and the panel before
    // it: follow the job itself (once a second at most) until it settles.
    const moving = j.status === 'processing' || (j.status === 'pending' && Date.parse(j.nextRunAt) <= Date.now() + 1000);
    if (moving) scheduleDetail();
  } catch (e) {
    if (seq !== detailSeq || e.status !== 404) return seq === detailSeq && showError(e);
    Object.assign(S, { detail: null, detailKey: '' });
    $('#detail-status').innerHTML = pill('missing');
    $('#detail-body').innerHTML = `<p class="muted">Job <code>${esc(id)}</code> does not exist (any more).</p>`;
    setActions(null);
  }
}
function scheduleDetail() {
  if (!S.detailId || detailTimer) return;
  if (document.hidden) { S.stale = true; return; }
  detailTimer = setTimeout(() => { detailTimer = 0; loadDetail(false); }, Math.max(0, 1000 - (Date.now() - S.lastDetail)));
}
function setActions(status) {
  const bar = $('#detail-actions');
  bar.hidden = S.readOnly;
  for (const b of $$('button', bar)) b.disabled = S.readOnly || !status || !!ALLOWED[b.dataset.action]?.every((s) => s !== status);
  $('#reschedule-at').disabled = $('#priority-value').disabled = S.readOnly || status !== 'pending';
}
function jsonBlock(k, v) {
  let s;
  try { s = JSON.stringify(v, null, 2); } catch { s = String(v); }
  s ??= String(v);
  return `<h3>${k}</h3><pre class="json" data-field="${k}">${esc(s.slice(0, 100000))}</pre>` + (s.length > 100000 ? `<p class="muted">Truncated (${s.length} characters).</p>` : '');
}
function attemptsTable(list) {
  const rows = list.map((x, i) => [x, i + 1]).reverse().slice(0, 100).map(([x, n]) => `<tr><td class="num">${n}</td><td>${relHtml(x.startedAt)}</td>`
    + `<td class="num">${esc(fmtMs(x.durationMs))}</td><td><span class="pill ${stClass({ stalled: 'processing', snoozed: 'waiting' }[x.outcome] || x.outcome)}">${esc(x.outcome)}</span></td>`
    + `<td class="mono">${esc(x.instance)}</td><td class="err-cell">${esc(x.error)}</td></tr>`).join('');
  return `<h3>Attempts (${list.length}, newest first)</h3><div class="tablewrap"><table class="grid mini" data-field="attempts"><thead><tr>`
    + `<th class="num">#</th><th>Started</th><th class="num">Took</th><th>Outcome</th><th>Instance</th><th>Error</th></tr></thead><tbody>${rows}</tbody></table></div>`;
}
function depNode(x, y, d, self) {
  return `<g class="node ${stClass(d.status)}${self ? ' self" data-dep-self' : `" data-dep="${esc(d.id)}" data-open-job`}="${esc(d.id)}" data-status="${esc(d.status)}"`
    + `${self ? '' : ' tabindex="0" role="button"'}><title>${esc(d.id)} (${esc(d.status)})</title><rect x="${x}" y="${y}" width="210" height="24" rx="5"/>`
    + `<text x="${x + 9}" y="${y + 16}">${esc(trunc(`${d.name || '?'} · ${shortId(d.id)}`, 30))}</text></g>`;
}
function depSvg(j) {
  const deps = j.dependsOn.slice(0, MAX_DEPS).map((id) => ({ id, ...(S.deps.get(id) || { status: 'unknown' }) }));
  const n = deps.length, more = j.dependsOn.length - n, RH = 32, X2 = 300, W = 514;
  const H = n * RH + (more ? 20 : 0) + 4, jy = ((n - 1) * RH) / 2 + 4, jm = jy + 12;
  let s = `<svg viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="dependencies"><defs><marker id="dep-arrow" viewBox="0 0 8 8" `
    + 'refX="7" refY="4" markerWidth="7" markerHeight="7" orient="auto"><path class="arrowhead" d="M0,0L8,4L0,8z"/></marker></defs>';
  deps.forEach((d, i) => {
    const y = 4 + i * RH, m = y + 12;
    s += `<path class="edge" d="M213,${m} C260,${m} ${X2 - 50},${jm} ${X2 - 2},${jm}" marker-end="url(#dep-arrow)"/>` + depNode(2, y, d);
  });
  s += depNode(X2, jy, j, true);
  return s + (more ? `<text class="more" x="4" y="${n * RH + 18}">+${more} more not shown</text>` : '') + '</svg>';
}
async function loadDeps(j, seq) {
  await Promise.all(j.dependsOn.slice(0, MAX_DEPS).map((id) => api('api/jobs/' + enc(id)).then(
    (d) => S.deps.set(id, { name: d?.name, status: d?.status }), (e) => S.deps.set(id, { status: e.status === 404 ? 'missing' : 'unknown' }))));
  if (seq === detailSeq && $('#dep-graph')) $('#dep-graph').innerHTML = depSvg(j);
}
function renderDetail(j, first) {
  $('#detail-status').innerHTML = pill(j.status);
  $('#detail-name').textContent = j.name;
  setActions(j.status);
  if (first) {
    $('#reschedule-at').value = toLocalInput(j.nextRunAt);
    $('#priority-value').value = String(j.priority ?? 0);
  }
  const key = JSON.stringify(j);
  if (key === S.detailKey) return;
  S.detailKey = key;
  const t = (iso) => iso && `${relHtml(iso)} <span class="muted">${esc(fmtAbs(iso))}</span>`;
  const code = (v) => v != null && `<code>${esc(v)}</code>`;
  const ms = (v) => v != null && esc(fmtMs(v));
  const rows = [
    ['id', 'ID', `<code class="selall">${esc(j.id)}</code>`], ['priority', 'Priority', esc(j.priority ?? 0)],
    ['failCount', 'Failures', esc(j.failCount ?? 0)], ['stallCount', 'Stalls', j.stallCount != null && esc(j.stallCount)],
    ['nextRunAt', 'Next run', t(j.nextRunAt)], ['createdAt', 'Created', t(j.createdAt)], ['updatedAt', 'Updated', t(j.updatedAt)],
    ['lockedAt', 'Locked', t(j.lockedAt)], ['leaseExpiresAt', 'Lease expires', t(j.leaseExpiresAt)], ['claimedBy', 'Claimed by', code(j.claimedBy)],
    ['completedAt', 'Completed', t(j.completedAt)], ['durationMs', 'Duration', ms(j.durationMs)], ['timeoutMs', 'Timeout', ms(j.timeoutMs)],
    ['uniqueKey', 'Unique key', code(j.uniqueKey)], ['group', 'Group', code(j.group)],
    // The trace id, to look the enqueue and the runs up in a tracing backend.
    ['traceContext', 'Trace', j.traceContext?.traceparent && `<code class="selall" title="${esc(j.traceContext.traceparent)}">${esc(j.traceContext.traceparent.slice(3, 35))}</code>`],
    ['repeat', 'Repeat', j.repeat && fmtRepeat(j.repeat) + (j.repeat.timezone ? ` <span class="muted">(${esc(j.repeat.timezone)})</span>` : '')],
    ['dependsOn', 'Depends on', j.dependsOn?.length && j.dependsOn.map((d) => `<button type="button" class="link mono" data-open-job="${esc(d)}">${esc(shortId(d))}</button>`).join(' ')],
  ];
  let h = '<dl class="kv">' + rows.map(([k, l, v]) => (v ? `<dt>${l}</dt><dd data-field="${k}">${v}</dd>` : '')).join('') + '</dl>';
  if (j.failReason || j.failStack) {
    h += '<h3>Error</h3>' + (j.failReason ? `<pre class="reason-pre" data-field="failReason">${esc(j.failReason)}</pre>` : '')
      + (j.failStack ? `<pre class="stack" data-field="failStack">${esc(j.failStack)}</pre>` : '');
  }
  if (j.progress !== undefined) h += jsonBlock('progress', j.progress);
  if (j.result !== undefined) h += jsonBlock('result', j.result);
  h += jsonBlock('data', j.data ?? null);
  if (j.attempts?.length) h += attemptsTable(j.attempts);
  if (j.dependsOn?.length) h += `<h3>Dependencies</h3><div id="dep-graph" class="dep-graph">${depSvg(j)}</div>`;
  $('#detail-body').innerHTML = h;
}

// ---------- actions ----------
function onAction(btn) {
  const a = btn.dataset.action, name = btn.dataset.name, f = S.filter;
  if (a === 'pause' || a === 'resume') {
    const p = a === 'pause';
    return act(p ? `Pause ${name}? Workers stop claiming its jobs until it is resumed.` : `Resume ${name}? Workers claim its jobs again.`,
      () => post(`api/names/${enc(name)}/${a}`), (r) => `${name} ${(r?.paused ?? p) ? 'paused' : 'resumed'}`, { yes: p ? 'Pause' : 'Resume' });
  }
  if (a === 'pause-group' || a === 'resume-group') {
    const p = a === 'pause-group', group = btn.dataset.group, what = `group ${group} of ${name}`;
    return act(p ? `Pause ${what}? Workers stop claiming its jobs; the other groups go on.` : `Resume ${what}?`,
      () => post(`api/names/${enc(name)}/groups/${enc(group)}/${p ? 'pause' : 'resume'}`), `${what} ${p ? 'paused' : 'resumed'}`, { yes: p ? 'Pause' : 'Resume' });
  }
  if (a === 'redrive') {
    return act(`Retry ${plural(countOf(name, ['failed']), 'failed job')} of ${name}?`, () => post('api/redrive', { name }),
      (r) => `Retried ${plural(num(r?.count), 'job')} of ${name}`, { yes: 'Redrive' });
  }
  if (a.startsWith('bulk-')) {
    const op = a.slice(5), verb = op[0].toUpperCase() + op.slice(1), n = countOf(f.name, f.status, f.group), body = {};
    if (f.name) body.name = f.name;
    if (f.group) body.group = f.group;
    if (f.status.length) body.status = [...f.status];
    if (!f.name && !f.group && !f.status.length) return;
    return act(`${verb} ${n} ${stw(f.status)}job${n === 1 ? '' : 's'} of ${f.name || 'all names'}${f.group ? ` in group ${f.group}` : ''}?`
      + (f.after || f.before ? ' (Date filters do not apply to bulk actions.)' : '') + (op === 'delete' ? ' This cannot be undone.' : ''),
      () => post('api/jobs/bulk/' + op, body), (r) => `${{ retry: 'Retried', cancel: 'Cancelled', delete: 'Deleted' }[op]} ${plural(num(r?.count), 'job')}`, { yes: verb + ' all', danger: op !== 'retry' });
  }
  const j = S.detail;
  if (!j || !btn.closest('#job-detail')) return;
  const who = `job ${shortId(j.id)} of ${j.name}`, path = 'api/jobs/' + enc(j.id), st = (r) => (r?.status ? ` (now ${r.status})` : '');
  switch (a) {
    case 'retry': return act(`Retry ${who}?`, () => post(path + '/retry'), (r) => `Retried ${who}${st(r)}`, { yes: 'Retry' });
    case 'cancel': return act(`Cancel ${who}?`, () => post(path + '/cancel'), (r) => `Cancelled ${who}${st(r)}`, { yes: 'Cancel job', no: 'Keep it', danger: true });
    case 'run-now': return act(`Run ${who} now?`, () => post(path + '/run-now'), `${who} will run now`, { yes: 'Run now' });
    case 'reschedule': {
      const iso = isoOf($('#reschedule-at').value);
      if (!iso) return toast('Pick a date and time first.', 'INVALID_INPUT');
      return act(`Reschedule ${who} to ${fmtAbs(iso)}?`, () => post(path + '/reschedule', { runAt: iso }), `Rescheduled ${who}`, { yes: 'Reschedule' });
    }
    case 'priority': {
      const v = $('#priority-value').value.trim(), p = Number(v);
      if (!v || !Number.isFinite(p)) return toast('The priority must be a number.', 'INVALID_INPUT');
      return act(`Set the priority of ${who} to ${p}?`, () => post(path + '/priority', { priority: p }), `Priority of ${who} is now ${p}`, { yes: 'Set priority' });
    }
    case 'delete': return act(`Delete ${who} permanently? This cannot be undone.`, () => api(path, { method: 'DELETE' }),
      () => { if (S.detailId === j.id) closeDetail(); return `Deleted ${who}`; }, { yes: 'Delete', danger: true });
  }
}

// ---------- capabilities, health, instances, schedules ----------
async function loadCaps() {
  try {
    const c = await api('api/capabilities');
    S.readOnly = !!c?.readOnly;
    $('#version').textContent = c?.version ? String(c.version).replace(/^v?/, 'v') : '';
  } catch (e) { showError(e); }
  document.body.classList.toggle('readonly', S.readOnly);
  $('#readonly-badge').hidden = !S.readOnly;
  renderNames();
  renderBulk();
  setActions(S.detail?.status);
}
async function loadHealth() {
  let h = null;
  try { h = await api('api/health'); } catch (e) { if (typeof e.body?.healthy === 'boolean') h = e.body; }
  const el = $('#health');
  el.dataset.healthy = String(!!h?.healthy);
  el.title = h ? (h.healthy ? 'healthy' : 'unhealthy') : 'health check failed';
  $('#health-text').textContent = h ? plural(num(h.instances), 'instance') : 'unreachable';
}
const table = (sel, list, row, cols, empty) => {
  $(sel).innerHTML = list.length ? list.map(row).join('') : `<tr class="empty"><td colspan="${cols}">${empty}</td></tr>`;
  $(sel + '-count').textContent = `(${list.length})`;
};
const loadInstances = () => api('api/instances').then((list) => table('#instances', list || [], (i) => `<tr data-id="${esc(i.id)}"><td class="mono">${esc(i.id)}</td>`
  + `<td>${(i.names || []).map((n) => `<span class="tag">${esc(n)}</span>`).join(' ') || '—'}</td>`
  + `<td><span class="tag ${i.notifyMode === 'change-stream' ? 'cs' : 'poll'}">${esc(i.notifyMode)}</span></td><td>${relHtml(i.startedAt)}</td>`
  + `<td${Date.now() - Date.parse(i.heartbeatAt) > 60000 ? ' class="stale"' : ''}>${relHtml(i.heartbeatAt)}</td></tr>`, 5, 'No live instances.'), showError);
const loadSchedules = () => api('api/schedules').then((list) => table('#schedules',
  (list || []).slice().sort((a, b) => String(a.nextRunAt).localeCompare(String(b.nextRunAt))),
  (j) => `<tr data-id="${esc(j.id)}" class="click"><td>${esc(j.name)}</td><td>${fmtRepeat(j.repeat)}</td><td>${esc(j.repeat?.timezone || '—')}</td>`
    + `<td>${relHtml(j.nextRunAt)}</td><td>${pill(j.status)}</td><td class="mono" title="${esc(j.id)}">${esc(shortId(j.id))}</td></tr>`, 6, 'No recurring jobs.'), showError);
function refresh(manual) {
  if (manual) loadCaps();
  loadNames(true);
  loadJobs();
  loadHealth();
  loadInstances();
  loadSchedules();
  if (S.detailId) loadDetail(false);
}

// ---------- live updates ----------
function setMode(m) {
  if (S.mode === m) return;
  S.mode = m;
  const el = $('#live');
  el.textContent = m;
  el.className = 'conn ' + m;
  if (m === 'live') { clearInterval(S.poll); S.poll = 0; } else S.poll ||= setInterval(() => document.hidden || loadNames(), 5000);
}
function connect() {
  if (!window.EventSource) return;
  const es = new EventSource('api/events');
  es.onopen = () => setMode('live');
  es.addEventListener('snapshot', (e) => { const d = parse(e.data); if (d) { setMode('live'); applyNames(d.names); } });
  es.addEventListener('job', (e) => {
    const j = parse(e.data)?.job;
    if (!j) return;
    if (S.detailId && (j.id === S.detailId || S.detail?.dependsOn?.includes(j.id))) scheduleDetail();
    if (S.jobs.some((x) => x.id === j.id)) scheduleJobs();
  });
  es.onerror = () => {
    setMode('polling');
    if (es.readyState === EventSource.CLOSED) { es.close(); setTimeout(connect, 15000); } // the browser gave up: retry later
  };
}
let ticks = 0;
function tick() {
  for (const t of $$('time.rel')) t.textContent = rel(t.getAttribute('datetime'));
  if (S.mode === 'live' && S.namesAt) record(S.names); // no snapshot while live = counts unchanged: a fresh sample
  renderNames();
  if (++ticks % 2 === 0 && !document.hidden) { loadHealth(); loadInstances(); loadSchedules(); }
}

// ---------- events (all delegated) ----------
document.addEventListener('click', (e) => {
  const t = e.target, b = t.closest('button');
  if (t.id === 'confirm') return closeConfirm(false);
  if (t.id === 'help') { t.hidden = true; return; }
  if (b) {
    const d = b.dataset;
    if (d.confirm) return closeConfirm(d.confirm === 'yes');
    if (d.action) return S.readOnly || onAction(b);
    if (d.statusFilter != null) {
      const s = d.statusFilter, cur = S.filter.status, next = !s ? [] : cur.includes(s) ? cur.filter((x) => x !== s) : [...cur, s];
      return setFilter({ status: STATUSES.filter((x) => next.includes(x)) });
    }
    if (d.status && d.name != null) {
      setFilter({ name: d.name, status: [d.status] });
      const sec = $('#jobs-section'), top = sec.getBoundingClientRect().top;
      return (top < 48 || top > innerHeight - 200) && sec.scrollIntoView({ block: 'start' });
    }
    if (d.filterName != null) return setFilter({ name: d.filterName, status: [] });
    if (d.filterGroup != null) {
      setFilter({ group: d.filterGroup });
      return $('#jobs-section').scrollIntoView({ block: 'start' });
    }
    if (d.openJob) return openDetail(d.openJob);
    if (b.closest('#toast .msg')) return b.closest('.msg').remove();
    ({
      'detail-close': closeDetail, 'refresh-btn': () => refresh(true), 'prev-page': () => page('backward'), 'next-page': () => page('forward'),
      'help-btn': () => toggleHelp(true), 'help-close': () => toggleHelp(false),
      'filter-clear': () => setFilter({ name: '', group: '', status: [], after: '', before: '' }),
      'filter-group-clear': () => setFilter({ group: '' }),
    })[b.id]?.();
    return;
  }
  const node = t.closest('[data-open-job]'), tr = t.closest('tr[data-id]');
  if (node) return openDetail(node.dataset.openJob);
  if (!tr || String(getSelection()).length) return;
  if (tr.closest('#jobs')) { select(tr.dataset.id); openDetail(tr.dataset.id); } else if (tr.closest('#schedules')) openDetail(tr.dataset.id);
});
document.addEventListener('change', (e) => {
  const keys = { 'filter-name': 'name', 'filter-after': 'after', 'filter-before': 'before', 'sort-by': 'sortBy', 'sort-dir': 'sort', 'page-size': 'limit' };
  const k = keys[e.target.id];
  if (k) setFilter({ [k]: k === 'limit' ? +e.target.value : e.target.value });
});
function toggleHelp(show) {
  $('#help').hidden = !show;
  if (show) $('#help-close').focus();
}
document.addEventListener('keydown', (e) => {
  const t = e.target, helpOpen = !$('#help').hidden;
  if (e.key === 'Escape') {
    if (confirmResolve) return closeConfirm(false);
    if (helpOpen) return toggleHelp(false);
    if (isField(t)) return t.blur();
    return S.detailId && closeDetail();
  }
  if (confirmResolve) { // keep focus inside the dialog
    if (e.key === 'Tab') {
      e.preventDefault();
      const y = $('[data-confirm="yes"]');
      (document.activeElement === y ? $('[data-confirm="no"]') : y).focus();
    }
    return;
  }
  if (e.ctrlKey || e.metaKey || e.altKey || isField(t)) return;
  if (e.key === 'Enter') {
    if (t.dataset?.openJob && t.tagName !== 'BUTTON') { e.preventDefault(); return openDetail(t.dataset.openJob); }
    if (helpOpen || t.closest('button, a, [role="button"], summary')) return;
    if (S.sel) { e.preventDefault(); openDetail(S.sel); }
    return;
  }
  const fn = { '?': () => toggleHelp(!helpOpen), '/': () => $('#filter-name').focus(), j: () => move(1), k: () => move(-1), r: () => refresh(true) }[e.key];
  if (fn && (!helpOpen || e.key === '?')) { e.preventDefault(); fn(); }
});
document.addEventListener('visibilitychange', () => {
  if (document.hidden || !S.stale) return;
  S.stale = false;
  loadJobs();
  if (S.detailId) loadDetail(false);
});

// ---------- boot ----------
$('#chips').innerHTML = ['', ...STATUSES].map((s) => `<button type="button" class="chip ${s ? stClass(s) : ''}" data-status-filter="${s}" aria-pressed="false">${s || 'all'}</button>`).join('');
syncFilters();
setMode('polling');
loadCaps();
connect();
refresh();
setInterval(tick, 15000);
