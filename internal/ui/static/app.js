'use strict';
// Keybrake incident page. Vanilla JS, no build step. Every node is built with
// createElement/textContent, so nothing from an audit record is ever parsed as
// HTML (the server's CSP forbids inline code and styles anyway).
(function () {
  const DECISIONS = ['allowed', 'capped', 'blocked', 'scoped', 'revoked', 'held', 'error'];
  const SYMBOL = { allowed: '✓', capped: '$', blocked: '⊘', scoped: '◎', revoked: '✗', held: '⏸', error: '!' };
  const COLOUR = { allowed: '#009e73', capped: '#e69f00', blocked: '#d55e00', scoped: '#0072b2', revoked: '#cc79a7', held: '#56b4e9', error: '#3a3a3a' };
  // A hatch per decision (8x8 tile) so the chart reads without colour.
  const HATCH = { allowed: '', capped: 'M-2,2 L2,-2 M0,8 L8,0 M6,10 L10,6', blocked: 'M0,0 L8,8 M8,0 L0,8',
    scoped: 'dots', revoked: 'M0,2 H8 M0,6 H8', held: 'M4,0 V8 M0,4 H8', error: 'M2,0 V8 M6,0 V8' };
  const RANGES = { '1m': 60e3, '5m': 300e3, '15m': 900e3, '1h': 3600e3, '24h': 86400e3 };
  const NS = 'http://www.w3.org/2000/svg';
  const MIN_GAP = 250; // coalesce: at most ~4 renders a second
  const $ = (id) => document.getElementById(id);
  const arr = (v) => (Array.isArray(v) ? v : []);
  const obj = (v) => (v && typeof v === 'object' && !Array.isArray(v) ? v : {});
  const dlabel = (d) => (SYMBOL[d] ? SYMBOL[d] + ' ' + d : String(d || ''));
  const num = (n) => Number(n || 0).toLocaleString('en-US');

  const st = {
    session: null, now: null, tl: null, recs: null,
    live: true, range: '15m', win: null, zoom: [], bucket: null, geo: null, drag: null, tlDirty: false,
    sort: { key: 'time', dir: 1 }, lastSeen: 0, frozenAt: 0, newSince: 0,
    gated: false, es: null, poll: null, tick: null, ready: false, open: new Set(), nowKey: '', recKey: '',
  };

  // ---- DOM helpers -------------------------------------------------------
  function mk(doc, tag, attrs, kids) {
    const e = doc(tag);
    for (const k in attrs || {}) {
      const v = attrs[k];
      if (v == null || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k === 'cls' ? 'class' : k, v === true ? '' : String(v));
    }
    for (const c of kids) if (c != null && c !== false) e.append(c); // strings become text nodes
    return e;
  }
  const h = (tag, attrs, ...kids) => mk((t) => document.createElement(t), tag, attrs, kids);
  const s = (tag, attrs, ...kids) => mk((t) => document.createElementNS(NS, t), tag, attrs, kids);

  // ---- time: RFC 3339 with nanoseconds; shown in UTC ---------------------
  const ms = (t) => (t == null || t === '' ? NaN : Date.parse(String(t).replace(/(\.\d{3})\d+/, '$1'))); // ns -> ms
  const iso = (m) => new Date(m).toISOString().replace('.000Z', 'Z');
  const pad = (n, w) => String(n).padStart(w || 2, '0');
  function hms(m, withMs) {
    if (!isFinite(m)) return '—';
    const d = new Date(m);
    const t = pad(d.getUTCHours()) + ':' + pad(d.getUTCMinutes()) + ':' + pad(d.getUTCSeconds());
    return withMs ? t + '.' + pad(d.getUTCMilliseconds(), 3) : t;
  }
  const day = (m) => new Date(m).toISOString().slice(0, 10);
  const dur = (d) => (d < 1000 ? d + ' ms' : d < 120e3 ? +(d / 1000).toFixed(1) + ' s' : d < 7200e3 ? +(d / 60e3).toFixed(1) + ' min' : +(d / 3600e3).toFixed(1) + ' h');

  // ---- exact decimal strings (money is never added as floats) ------------
  function dec(v) {
    const m = /^\s*(-?)(\d*)(?:\.(\d+))?\s*$/.exec(v == null || v === '' ? '0' : String(v));
    if (!m || (m[2] === '' && !m[3])) return null;
    const f = m[3] || '';
    return { n: BigInt(m[1] + (m[2] || '0') + f), s: f.length };
  }
  function align(a, b) {
    const k = Math.max(a.s, b.s);
    return [a.n * 10n ** BigInt(k - a.s), b.n * 10n ** BigInt(k - b.s), k];
  }
  function dsum(list) {
    let acc = { n: 0n, s: 0 };
    for (const v of list) {
      const d = dec(v);
      if (!d) return null;
      const [x, y, k] = align(acc, d);
      acc = { n: x + y, s: k };
    }
    return acc;
  }
  function dstr(d) {
    const neg = d.n < 0n;
    let t = (neg ? -d.n : d.n).toString().padStart(d.s + 1, '0');
    if (d.s) t = t.slice(0, -d.s) + '.' + t.slice(-d.s);
    return (neg ? '-' : '') + t;
  }
  const dpct = (u, m) => { const [x, y] = align(u, m); return y <= 0n ? (x > 0n ? 100 : 0) : Number((x * 100n) / y); }; // floor, exact
  const nonZero = (v) => { const d = dec(v); return d ? d.n !== 0n : !!v; };
  const moneyMap = (m) => Object.keys(obj(m)).map((c) => m[c] + ' ' + c).join(', ');

  // ---- fetch ---------------------------------------------------------------
  async function api(path, opts) {
    const o = Object.assign({ credentials: 'same-origin', cache: 'no-store' }, opts || {});
    o.headers = Object.assign({ Accept: 'application/json' }, (opts && opts.headers) || {});
    const res = await fetch(path, o);
    if (res.status === 401) { gate(); throw new Error('unauthorised'); }
    let body = null;
    try { body = await res.json(); } catch (e) { /* empty or not JSON */ }
    if (!res.ok) throw new Error((body && body.error) || res.status + ' ' + res.statusText + ' from ' + path.split('?')[0]);
    return body || {};
  }
  function gate() { // 401: the cookie is gone; nothing further will work, so stop everything
    if (st.gated) return;
    st.gated = true;
    if (st.es) st.es.close();
    clearInterval(st.poll); clearInterval(st.tick);
    document.body.classList.add('gated');
    $('gate').hidden = false;
  }
  function showError(e) {
    if (!st.gated) { $('error').textContent = 'Could not refresh: ' + (e && e.message ? e.message : e); $('error').hidden = false; }
  }
  const clearError = () => { $('error').hidden = true; $('error').textContent = ''; };

  // ---- refresh scheduling: events coalesce into at most MIN_GAP renders ----
  let want = { now: false, win: false }, timer = null, busy = false, lastRun = 0;
  function refresh(what, immediate) {
    if (what.now) want.now = true;
    if (what.win) want.win = true;
    if (busy) return; // run() reschedules when it finishes
    if (timer && !immediate) return;
    clearTimeout(timer);
    timer = setTimeout(run, immediate ? 0 : Math.max(0, lastRun + MIN_GAP - Date.now()));
  }
  async function run() {
    timer = null;
    if (st.gated || !st.ready) return;
    busy = true; lastRun = Date.now();
    const w = want; want = { now: false, win: false };
    try {
      if (w.now || w.win) await loadNow();
      if (w.win && st.live) await loadWindow();
      clearError();
    } catch (e) { showError(e); }
    busy = false;
    if (want.now || want.win) refresh({});
  }

  async function loadNow() {
    const now = await api('/api/now');
    st.now = now;
    // Rebuild the DOM only when the status changed (besides its clock), so a
    // button being pressed is not replaced under the pointer mid-click.
    const key = JSON.stringify(Object.assign({}, now, { time: null }));
    if (key !== st.nowKey) { st.nowKey = key; renderHeader(now); renderNow(now); }
    document.body.dataset.updates = String((+document.body.dataset.updates || 0) + 1);
  }
  function liveWindow() {
    const t = ms(st.now && st.now.time);
    const until = Math.ceil((isFinite(t) ? t : Date.now()) / 1000) * 1000;
    return { since: until - RANGES[st.range], until };
  }
  function loadWindow() {
    if (st.live) st.win = liveWindow();
    renderWindowLabel();
    return Promise.all([loadTimeline(), loadRecords()]);
  }
  let tlSeq = 0, recSeq = 0;
  async function loadTimeline() {
    const seq = ++tlSeq, w = st.win;
    const tl = await api('/api/timeline?' + new URLSearchParams({ since: iso(w.since), until: iso(w.until) }));
    if (seq !== tlSeq) return; // a newer window was asked for meanwhile
    st.tl = tl;
    if (st.drag) st.tlDirty = true; else renderTimeline();
  }
  async function loadRecords() {
    const seq = ++recSeq, w = st.bucket || st.win;
    const q = new URLSearchParams({ since: iso(w.since), until: iso(w.until), limit: '500' });
    for (const f of ['agent', 'vendor', 'decision', 'customer']) {
      const v = $('f-' + f).value.trim();
      if (v) q.set(f, v);
    }
    const r = await api('/api/records?' + q);
    if (seq !== recSeq) return;
    st.recs = r;
    renderRecords();
  }

  // ---- header ----------------------------------------------------------------
  function renderHeader(n) {
    const ses = st.session || {};
    $('source').textContent = [ses.source, ses.database && 'database ' + ses.database].filter(Boolean).join(' · ') || '—';
    const pol = $('policy');
    pol.replaceChildren('policy ', h('code', { text: n.policy_hash || '—' }), n.policy_file ? ' in force from ' + n.policy_file : ' in force');
    if (n.policy_error) pol.append(' ', h('strong', { cls: 'bad', text: 'policy error: ' + n.policy_error }));
    if (ses.actions === false) pol.append(' · ', h('span', { cls: 'ro', text: 'read-only (start with --allow-actions to act)' }));
    const state = $('state'), revoked = arr(n.revoked);
    state.className = n.halted ? 'state halted' : revoked.length ? 'state partly' : 'state running';
    state.textContent = n.halted
      ? 'HALTED: every agent is stopped' + (n.halted_by ? ' (by ' + n.halted_by + ')' : '')
      : 'running' + (revoked.length ? ' · revoked: ' + revoked.join(', ') : '');
    const wl = $('warnings');
    wl.replaceChildren(...arr(n.warnings).map((w) => h('li', { text: '⚠ ' + w })));
    wl.hidden = !wl.children.length;
    document.body.dataset.halted = String(!!n.halted);
  }

  // ---- Now -------------------------------------------------------------------
  function renderNow(n) {
    const actions = !!(st.session && st.session.actions);
    const revoked = new Set(arr(n.revoked)), by = obj(n.revoked_by);
    // agent -> vendor -> what the status says about it; '' is "every agent".
    const agents = new Map();
    const group = (a, v) => {
      a = a || '';
      if (!agents.has(a)) agents.set(a, new Map());
      const m = agents.get(a);
      if (v == null) return null;
      if (!m.has(v)) m.set(v, { limits: [], customers: [], spend: [] });
      return m.get(v);
    };
    for (const l of arr(n.limits)) group(l.agent, l.vendor || '').limits.push(l);
    for (const c of arr(n.customers)) group(c.agent, c.vendor || '').customers.push(c);
    for (const p of arr(n.spend)) group(p.agent, p.vendor || '').spend.push(p);
    for (const a of revoked) group(a);
    const names = [...agents.keys()].sort((a, b) => (a === '') - (b === '') || a.localeCompare(b));

    const stops = $('stops');
    stops.replaceChildren();
    if (n.halted) stops.append(h('li', { cls: 'stop halted', text: '■ every agent halted' + (n.halted_by ? ' by ' + n.halted_by : '') }));
    for (const a of revoked) stops.append(h('li', { cls: 'stop revoked', text: '✗ ' + a + ' revoked' + (by[a] ? ' by ' + by[a] : '') }));

    const o = obj(n.open);
    const amounts = moneyMap(o.amounts);
    $('open').textContent = (o.reserved || o.unknown)
      ? 'Open calls: ' + num(o.reserved) + ' reserved (in flight), ' + num(o.unknown) + ' unknown outcome (sent, no answer: money may have moved)' +
        (o.oldest ? ' · oldest ' + hms(ms(o.oldest)) + ' UTC' : '') + (amounts ? ' · ' + amounts + ' held' : '')
      : 'No open calls: nothing reserved or of unknown outcome.' + (amounts ? ' (' + amounts + ')' : '');

    const ga = $('global-act');
    ga.replaceChildren();
    if (actions) {
      ga.append(actBtn('halt', '', 'Halt every agent', 'danger'), actBtn('resume', '', 'Resume (lift the kill switch)'));
    } else {
      ga.append(h('span', { cls: 'ro', text: 'read-only (start with --allow-actions to act)' }));
    }

    const fa = document.activeElement, focus = fa && fa.dataset && fa.dataset.act ? [fa.dataset.act, fa.dataset.agent || ''] : null;
    const cards = names.map((a) => {
      const isRev = revoked.has(a);
      const stopped = a && isRev ? 'revoked' : n.halted ? 'halted' : '';
      const head = h('div', { cls: 'agent-head' },
        h('h3', { text: a || 'every agent (shared limits)' }),
        stopped ? h('span', { cls: 'badge ' + stopped, text: stopped === 'revoked' ? '✗ revoked' + (by[a] ? ' by ' + by[a] : '') : '■ halted' }) : h('span', { cls: 'badge ok', text: '● running' }));
      if (actions && a) {
        const acts = h('div', { cls: 'act' }, actBtn('halt', a, 'Halt', 'danger'), actBtn('revoke', a, 'Revoke', 'danger'));
        // Restore edits the policy's revoked: as `keybrake restore` does; a kill-switch halt is lifted by Resume.
        if (isRev && !/^the kill switch /.test(by[a] || '')) acts.append(actBtn('restore', a, 'Restore'));
        else if (isRev) acts.append(h('span', { cls: 'muted', text: 'halted by the kill switch: Resume lifts it' }));
        head.append(acts);
      }
      const card = h('article', { cls: 'agent' + (stopped ? ' stopped' : '') }, head);
      const vendors = agents.get(a);
      if (!vendors.size) vendors.set('', { limits: [], customers: [], spend: [] });
      for (const [v, g] of [...vendors].sort((x, y) => x[0].localeCompare(y[0]))) card.append(groupEl(a, v, g, stopped));
      return card;
    });
    $('agents').replaceChildren(...(cards.length ? cards : [h('p', { cls: 'muted', text: 'No agents or limits in the policy.' })]));
    renderApprovals(n, actions);
    renderShadow(n);
    if (focus) { const f = document.querySelector('[data-act="' + CSS.escape(focus[0]) + '"][data-agent="' + CSS.escape(focus[1]) + '"]'); if (f) f.focus(); } // keep keyboard focus
    fillFilterOptions();
  }
  // Held calls waiting for a person (approve_above, approve): each with
  // exactly what it lets through once.
  function renderApprovals(n, actions) {
    const list = arr(n.approvals), el = $('approvals');
    el.hidden = !list.length;
    if (!list.length) { el.replaceChildren(); return; }
    const items = list.map((a) => {
      const li = h('li', { cls: 'approval ' + a.state, 'data-approval': a.id },
        h('code', { text: a.id }), ' ',
        h('span', { cls: 'badge ' + (a.state === 'approved' ? 'ok' : 'held'), text: a.state === 'approved' ? '✓ approved by ' + a.by + ', not yet used' : '⏸ waiting for a person' }),
        h('div', { cls: 'what', text: a.what }),
        h('div', { cls: 'muted', text: 'rule ' + a.rule + ' · asked ' + hms(ms(a.asked)) + ' UTC · expires ' + hms(ms(a.until)) + ' UTC' }));
      if (actions && a.state === 'pending') {
        li.append(h('div', { cls: 'act' },
          h('button', { type: 'button', 'data-act': 'approve', 'data-approval': a.id, text: 'Approve once', onclick: () => confirmAct('approve', '', a) }),
          h('button', { type: 'button', cls: 'danger', 'data-act': 'deny', 'data-approval': a.id, text: 'Deny', onclick: () => confirmAct('deny', '', a) })));
      }
      return li;
    });
    el.replaceChildren(h('h3', { text: 'Waiting for a person: ' + list.length + (list.length === 1 ? ' approval' : ' approvals') }), h('ul', { cls: 'approval-list' }, ...items));
  }
  // What the shadow policy (serve --shadow) would have decided otherwise today.
  function renderShadow(n) {
    const list = arr(n.shadow), el = $('shadow');
    el.hidden = !list.length;
    if (!list.length) { el.replaceChildren(); return; }
    el.replaceChildren(h('h3', { text: 'Shadow policy: calls it would have decided otherwise today (UTC)' }),
      h('ul', {}, ...list.map((a) => h('li', { 'data-shadow-agent': a.agent },
        h('strong', { text: a.agent + ' on ' + a.vendor }), ': ' + num(a.differ) + ' of ' + num(a.calls) + ' calls (shadow policy ', h('code', { text: a.policy }), ')',
        h('ul', {}, ...arr(a.by).map((c) => h('li', { text: num(c.count) + ' × ' + c.from + ' → ' + c.to + ' by ' + c.rule + (c.code ? ' (' + c.code + ')' : '') }))),
        h('div', { cls: 'muted', text: 'first: #' + obj(a.first).id + ' at ' + hms(ms(obj(a.first).time)) + ' UTC, ' + obj(a.first).method + ' ' + obj(a.first).path })))));
  }
  function actBtn(verb, agent, text, cls) {
    return h('button', { type: 'button', cls, 'data-act': verb, 'data-agent': agent, text, onclick: () => confirmAct(verb, agent) });
  }
  function groupEl(a, v, g, stopped) {
    const el = h('div', { cls: 'group', 'data-agent': a, 'data-vendor': v, 'data-stopped': stopped },
      v ? h('h4', { text: (a || 'every agent') + ' · ' + v }) : '');
    if (!g.limits.length && !g.customers.length && !g.spend.length) el.append(h('p', { cls: 'muted', text: 'No limits for this agent in the policy.' }));
    // Within a group, show the rule without its agent/vendor prefix (the full rule is in the title).
    const short = (r) => String(r || '').replace(a ? 'agents.' + a + '.' + v + '.' : 'vendors.' + v + '.', '');
    if (g.limits.length) el.append(h('ul', { cls: 'limits' }, ...g.limits.map((l) => limitEl(l, '', short(l.rule)))));
    for (const c of g.customers) {
      const key = a + '|' + v + '|' + c.rule;
      const d = h('details', { cls: 'customers', open: st.open.has(key) },
        h('summary', { title: c.rule || '' }, 'per customer: ', h('code', { text: short(c.rule) }), ' · ' + num(c.counted) + ' customers counted'),
        arr(c.top).length ? h('ul', { cls: 'limits' }, ...arr(c.top).map((l) => limitEl(l, (l.customer || '?') + (l.account ? ' @ ' + l.account : ''), '')))
          : h('p', { cls: 'muted', text: 'No customer used yet.' }));
      d.addEventListener('toggle', () => { if (d.open) st.open.add(key); else st.open.delete(key); });
      el.append(d);
    }
    for (const p of g.spend) el.append(sparkline(p));
    return el;
  }
  function limitEl(l, who, name) {
    const count = l.unit === 'units' || typeof l.max === 'number';
    const used = dsum([l.settled, l.pending, l.unknown]), max = dec(l.max);
    const maxS = l.max == null ? '?' : String(l.max);
    let pct, usedS;
    if (used && max) { pct = dpct(used, max); usedS = dstr(used); } else { // not a decimal: show raw, estimate the bar
      usedS = String(l.settled == null ? '?' : l.settled);
      pct = Math.floor((100 * parseFloat(l.settled || 0)) / parseFloat(l.max || 1)) || 0;
    }
    const unit = count ? 'calls' : l.unit || '';
    const atCap = pct >= 100;
    const li = h('li', { cls: 'limit' + (atCap ? ' at-cap' : pct >= 80 ? ' near-cap' : ''), 'data-rule': l.rule || '', 'data-pct': pct,
      title: (l.rule || '') + (l.key ? '\n' + l.key : '') });
    const fig = h('span', { cls: 'figures' }, usedS + ' of ' + maxS + ' ' + unit + ' (' + pct + '%)');
    if (atCap) fig.append(' ', h('strong', { cls: 'cap', text: '● at cap' }));
    li.append(h('div', { cls: 'limit-line' }, h('span', { cls: 'limit-name' }, who ? h('strong', { text: who }) : '',
      name ? h('code', { text: name }) : ''), fig));
    // The bar: settled, pending, unknown stacked, in % of the max (display only).
    const f = (x) => Math.max(0, Math.min(100, (100 * (parseFloat(x) || 0)) / (parseFloat(l.max) || 1)));
    const sw = f(l.settled), pw = Math.min(100 - sw, f(l.pending)), uw = Math.min(100 - sw - pw, f(l.unknown));
    li.append(s('svg', { cls: 'track', viewBox: '0 0 100 10', preserveAspectRatio: 'none', 'aria-hidden': 'true' },
      s('rect', { cls: 'bg', x: 0, y: 0, width: 100, height: 10 }),
      s('rect', { cls: 'settled', x: 0, y: 0, width: sw, height: 10 }),
      s('rect', { cls: 'pending', x: sw, y: 0, width: pw, height: 10, fill: 'url(#p-capped)' }),
      s('rect', { cls: 'unknown', x: sw + pw, y: 0, width: uw, height: 10, fill: 'url(#p-blocked)' })));
    const extra = [];
    if (nonZero(l.pending) || nonZero(l.unknown)) extra.push('settled ' + l.settled);
    if (nonZero(l.pending)) extra.push('pending ' + l.pending);
    if (nonZero(l.unknown)) extra.push('unknown ' + l.unknown);
    if (extra.length) li.append(h('div', { cls: 'muted sub', text: extra.join(' + ') + ' ' + unit }));
    return li;
  }
  function sparkline(p) {
    const hours = arr(p.hours), vals = hours.map((x) => parseFloat(x) || 0), top = Math.max(...vals, 0);
    const total = dsum(hours), cur = p.currency || '';
    const peak = vals.indexOf(top);
    const sum = (total ? dstr(total) : '?') + ' ' + cur;
    const svgEl = s('svg', { cls: 'spark', viewBox: '0 0 96 24', role: 'img',
      'aria-label': 'spend per UTC hour today: ' + sum + (top > 0 ? ', peak at ' + pad(peak) + ':00 UTC, ' + hours[peak] + ' ' + cur : '') });
    hours.forEach((x, i) => {
      const bh = top > 0 ? Math.max(vals[i] > 0 ? 1 : 0, (vals[i] / top) * 22) : 0;
      svgEl.append(s('rect', { x: i * 4, y: 23 - bh, width: 3, height: bh + 1, cls: vals[i] > 0 ? 'on' : 'off' },
        s('title', {}, pad(i) + ':00 UTC: ' + x + ' ' + cur)));
    });
    return h('div', { cls: 'sparkline' }, h('span', { cls: 'muted', text: 'spend per hour (UTC) · ' + cur + ' · today ' + sum }), svgEl);
  }

  // ---- Act -------------------------------------------------------------------
  let pendingAct = null;
  function confirmAct(verb, agent, appr) {
    const a = agent, what = appr ? appr.what : '';
    const t = {
      approve: ['Approve exactly this call, once: ' + what + '. The agent\'s next call that is exactly this request goes through, still within every cap; the same request after it, or any other, stays held.', 'Approve once'],
      deny: ['Deny this call: ' + what + '. Calls of exactly this request are refused for the next hour instead of waiting.', 'Deny'],
      halt: a ? ['Halt ' + a + ': every call ' + a + " makes is refused (401) until 'Resume'. Nothing already sent is undone.", 'Halt ' + a]
        : ["Halt every agent: every call any agent makes is refused (401) until 'Resume'. Nothing already sent is undone.", 'Halt every agent'],
      resume: ["Resume every agent: lift the kill switch, so every agent's calls are decided by the policy again. Revoked agents stay revoked.", 'Resume every agent'],
      revoke: ['Revoke ' + a + ': every call ' + a + " makes is refused until 'Restore'. Nothing already sent is undone.", 'Revoke ' + a],
      restore: ['Restore ' + a + ': ' + a + "'s calls are decided by the policy again (unless every agent is halted).", 'Restore ' + a],
    }[verb];
    pendingAct = { verb, agent, approval: appr ? appr.id : '' };
    $('confirm-h').textContent = t[1] + '?';
    $('confirm-text').textContent = t[0];
    $('confirm-yes').textContent = t[1];
    $('confirm-yes').className = verb === 'halt' || verb === 'revoke' || verb === 'deny' ? 'danger' : '';
    $('confirm').showModal();
  }
  async function doAct(p) {
    const m = $('message');
    m.className = ''; m.textContent = p.verb + ' ' + (p.approval || p.agent || 'every agent') + '…';
    try {
      const body = p.approval ? { verb: p.verb, agent: '', approval: p.approval } : { verb: p.verb, agent: p.agent };
      const r = await api('/api/act', { method: 'POST', body: JSON.stringify(body),
        headers: { 'Content-Type': 'application/json', 'X-Keybrake-CSRF': (st.session && st.session.csrf) || '' } });
      m.className = 'ok'; m.textContent = '✓ ' + (r.message || p.verb + ' done');
    } catch (e) {
      if (st.gated) return;
      m.className = 'bad'; m.textContent = '✗ ' + p.verb + ' failed: ' + e.message;
    }
    refresh({ now: true, win: st.live }, true); // the result must show within a second
  }

  // ---- Timeline ----------------------------------------------------------------
  function buildDefs() {
    const defs = s('defs');
    for (const d of DECISIONS) {
      const p = s('pattern', { id: 'p-' + d, width: 8, height: 8, patternUnits: 'userSpaceOnUse' }, s('rect', { width: 8, height: 8, fill: COLOUR[d] }));
      if (HATCH[d] === 'dots') p.append(s('circle', { cx: 2, cy: 2, r: 1.3, fill: '#fff' }), s('circle', { cx: 6, cy: 6, r: 1.3, fill: '#fff' }));
      else if (HATCH[d]) p.append(s('path', { d: HATCH[d], stroke: '#fff', 'stroke-width': 1.6, 'stroke-opacity': 0.85 }));
      defs.append(p);
    }
    $('defs').append(defs);
    $('legend').replaceChildren(...DECISIONS.map((d) => h('li', {},
      s('svg', { width: 18, height: 12, 'aria-hidden': 'true' }, s('rect', { x: 0.5, y: 0.5, width: 17, height: 11, fill: 'url(#p-' + d + ')', stroke: '#222' })),
      h('span', { cls: 'd d-' + d, text: dlabel(d) }))),
    h('li', {}, s('svg', { width: 18, height: 12, 'aria-hidden': 'true' }, s('path', { d: 'M1,9 L9,3 L17,6', cls: 'money-line' })), h('span', { text: 'money moved' })));
  }
  const niceCeil = (v) => { const p = 10 ** Math.floor(Math.log10(v)); return [1, 2, 2.5, 5, 10].map((m) => m * p).find((x) => x >= v); };
  const TICKS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200].map((x) => x * 1000);

  function renderTimeline() {
    const tl = st.tl || {}, chart = $('chart');
    const W = Math.max(520, Math.round($('chart-wrap').clientWidth || 1000)), H = 300, M = { l: 56, r: 76, t: 46, b: 36 };
    const pw = W - M.l - M.r, ph = H - M.t - M.b;
    const buckets = arr(tl.buckets);
    const since = isFinite(ms(tl.since)) ? ms(tl.since) : st.win.since, until = isFinite(ms(tl.until)) ? ms(tl.until) : st.win.until;
    const span = Math.max(1, until - since), step = tl.step_ms || (buckets.length ? span / buckets.length : 1000);
    chart.dataset.span = String(Math.round(span / 1000)); // seconds drawn: what a test waits for after choosing a range
    const X = (t) => M.l + ((t - since) / span) * pw;
    let maxC = 0, busiest = -1;
    buckets.forEach((b, i) => { let c = 0; for (const d of DECISIONS) c += +b[d] || 0; if (c > maxC) { maxC = c; busiest = i; } });
    const yMax = maxC <= 5 ? Math.max(1, maxC) : niceCeil(maxC), yStep = maxC <= 5 ? 1 : yMax / 5;
    const Y = (v) => M.t + ph - (v / yMax) * ph;
    // Money: one line, for the currency that moved most in the window (display-only floats).
    const moved = obj(tl.moved);
    const cur = Object.keys(moved).sort((a, b) => parseFloat(moved[b]) - parseFloat(moved[a]))[0] || Object.keys(obj((buckets.find((b) => b.moved) || {}).moved))[0];
    const mv = buckets.map((b) => (cur ? parseFloat(obj(b.moved)[cur]) || 0 : 0));
    const mMax = Math.max(...mv, 0) > 0 ? niceCeil(Math.max(...mv)) : 0;
    const root = document.createDocumentFragment();
    root.append(s('rect', { cls: 'plot', x: M.l, y: M.t, width: pw, height: ph }));
    for (let v = 0; v <= yMax + 1e-9; v += yStep) { // y axis: calls
      root.append(s('line', { cls: 'grid', x1: M.l, x2: M.l + pw, y1: Y(v), y2: Y(v) }),
        s('text', { cls: 'axis', x: M.l - 6, y: Y(v) + 4, 'text-anchor': 'end' }, num(Math.round(v))));
    }
    root.append(s('text', { cls: 'axis-title', x: 14, y: M.t + ph / 2, transform: 'rotate(-90 14 ' + (M.t + ph / 2) + ')', 'text-anchor': 'middle' }, 'calls per ' + dur(step)));
    const tick = TICKS.find((x) => span / x <= Math.max(3, Math.floor(pw / 90))) || 86400e3;
    for (let t = Math.ceil(since / tick) * tick; t <= until; t += tick) { // x axis: UTC
      root.append(s('line', { cls: 'tick', x1: X(t), x2: X(t), y1: M.t + ph, y2: M.t + ph + 5 }),
        s('text', { cls: 'axis', x: X(t), y: M.t + ph + 18, 'text-anchor': 'middle' }, tick >= 60e3 ? hms(t).slice(0, 5) : hms(t)));
    }
    root.append(s('text', { cls: 'axis-title', x: M.l + pw, y: H - 2, 'text-anchor': 'end' }, 'time (UTC)'));
    // Bars: one rect per non-zero (bucket, decision), stacked in DECISIONS order.
    // Up to ~900x6 rects: clone one prototype per decision, set only what varies.
    const bars = s('g', { cls: 'bars' }), proto = {};
    for (const d of DECISIONS) proto[d] = s('rect', { cls: 'bar', fill: 'url(#p-' + d + ')', 'data-decision': d });
    for (const b of buckets) {
      const t = ms(b.t), ts = String(Math.floor(t / 1000));
      const x = X(t), full = Math.max(0.6, X(t + step) - x), w = (full > 4 ? full - 1 : full).toFixed(2), xs = x.toFixed(2);
      let acc = 0;
      for (const d of DECISIONS) {
        const c = +b[d] || 0;
        if (!c) continue;
        const y1 = Y(acc + c), y0 = Y(acc);
        acc += c;
        const r = proto[d].cloneNode(false);
        r.setAttribute('x', xs); r.setAttribute('y', y1.toFixed(2)); r.setAttribute('width', w);
        r.setAttribute('height', Math.max(0.5, y0 - y1).toFixed(2));
        r.setAttribute('data-t', ts); r.setAttribute('data-count', c);
        bars.appendChild(r);
      }
    }
    root.append(bars);
    if (mMax > 0) {
      const pts = buckets.map((b, i) => (X(ms(b.t) + step / 2)).toFixed(1) + ',' + (M.t + ph - (mv[i] / mMax) * ph).toFixed(1));
      root.append(s('polyline', { cls: 'money-line', points: pts.join(' ') }),
        s('line', { cls: 'tick', x1: M.l + pw, x2: M.l + pw, y1: M.t, y2: M.t + ph }),
        s('text', { cls: 'axis money', x: M.l + pw + 6, y: M.t + 4 }, +mMax.toFixed(4) + ' ' + cur),
        s('text', { cls: 'axis money', x: M.l + pw + 6, y: M.t + ph / 2 + 4 }, +(mMax / 2).toFixed(4) + ' ' + cur),
        s('text', { cls: 'axis money', x: M.l + pw + 6, y: M.t + ph + 4 }, '0 ' + cur),
        s('text', { cls: 'axis-title', x: W - 12, y: M.t + ph / 2, transform: 'rotate(90 ' + (W - 12) + ' ' + (M.t + ph / 2) + ')', 'text-anchor': 'middle' }, cur + ' moved per bucket'));
    }
    if (st.bucket && st.bucket.since >= since && st.bucket.since < until) {
      root.append(s('rect', { cls: 'picked', x: X(st.bucket.since) - 1, y: M.t, width: Math.max(2, X(st.bucket.until) - X(st.bucket.since) + 2), height: ph }));
    }
    // Marks: vertical lines with a flag; labels staggered in three rows so they don't overlap.
    const marks = arr(tl.marks).filter((m) => ms(m.t) >= since && ms(m.t) <= until);
    const markText = [];
    marks.forEach((m, i) => {
      const t = ms(m.t), x = X(t), row = m.kind === 'first_refused' ? 0 : 1 + (i % 2), y = 12 + row * 12;
      const text = (m.label || m.kind || '').replace(/^(.{34}).+$/, '$1…');
      const g = s('g', { cls: 'mark mark-' + (m.kind || ''), 'data-kind': m.kind || '', 'data-t': Math.floor(t / 1000), 'data-record': m.record == null ? null : m.record },
        s('title', {}, (m.label || m.kind) + ' at ' + hms(t, true) + ' UTC' + (m.record != null ? ' (record #' + m.record + ')' : '')),
        s('line', { x1: x, x2: x, y1: y + 2, y2: M.t + ph }),
        s('text', { x: x > M.l + pw * 0.7 ? x - 4 : x + 4, y, 'text-anchor': x > M.l + pw * 0.7 ? 'end' : 'start' }, (m.kind === 'first_refused' ? '▼ ' : '') + text));
      if (m.record != null) g.addEventListener('click', () => openRecord(m.record));
      root.append(g);
      markText.push((m.label || m.kind) + ' at ' + hms(t) + ' UTC');
    });
    const sel = s('rect', { cls: 'sel', x: 0, y: M.t, width: 0, height: ph, visibility: 'hidden' });
    root.append(sel);
    chart.setAttribute('viewBox', '0 0 ' + W + ' ' + H);
    chart.setAttribute('width', W); chart.setAttribute('height', H);
    chart.replaceChildren(root);
    st.geo = { W, M, pw, since, until, span, step, buckets, sel };

    const tot = obj(tl.totals), calls = DECISIONS.reduce((a, d) => a + (+tot[d] || 0), 0);
    const parts = DECISIONS.filter((d) => +tot[d]).map((d) => num(tot[d]) + ' ' + dlabel(d));
    const movedS = moneyMap(moved);
    $('totals').textContent = calls ? num(calls) + ' calls: ' + parts.join(', ') + (movedS ? ' · moved ' + movedS : ' · no money moved')
      : 'No calls in this window.';
    chart.setAttribute('aria-label', num(calls) + ' calls in the window: ' + (DECISIONS.filter((d) => +tot[d]).map((d) => num(tot[d]) + ' ' + d).join(', ') || 'none'));
    $('chart-summary').textContent = 'Timeline from ' + hms(since) + ' to ' + hms(until) + ' UTC on ' + day(since) + ' in ' + dur(step) + ' buckets. ' +
      $('totals').textContent + (busiest >= 0 ? ' Busiest bucket ' + hms(ms(buckets[busiest].t)) + ' UTC with ' + num(maxC) + ' calls.' : '') +
      (markText.length ? ' Marks: ' + markText.join('; ') + '.' : '');
    st.tlDirty = false;
  }

  // Chart interaction: hover = tooltip, drag = zoom, click = pick a bucket.
  function chartX(ev) { const r = $('chart').getBoundingClientRect(); return (ev.clientX - r.left) * (st.geo.W / (r.width || 1)); }
  function tAt(x) { const g = st.geo; return g.since + ((Math.min(Math.max(x, g.M.l), g.M.l + g.pw) - g.M.l) / g.pw) * g.span; }
  function bucketAt(x) {
    const g = st.geo;
    if (!g || x < g.M.l || x > g.M.l + g.pw) return -1;
    const i = Math.floor((tAt(x) - g.since) / g.step);
    return i >= 0 && i < g.buckets.length ? i : -1;
  }
  function showTip(ev) {
    const tip = $('tip'), i = bucketAt(chartX(ev));
    if (i < 0 || st.drag) { tip.hidden = true; return; }
    const b = st.geo.buckets[i], t = ms(b.t);
    const lines = DECISIONS.filter((d) => +b[d]).map((d) => num(b[d]) + ' ' + dlabel(d));
    const mv = moneyMap(b.moved);
    tip.replaceChildren(h('strong', { text: hms(t, st.geo.step < 1000) + ' UTC (+' + dur(st.geo.step) + ')' }),
      ...(lines.length ? lines : ['no calls']).map((l) => h('div', { text: l })), mv ? h('div', { text: 'moved ' + mv }) : '');
    tip.hidden = false;
    const wrap = $('chart-wrap').getBoundingClientRect();
    const left = ev.clientX - wrap.left + 14;
    tip.style.left = Math.min(left, wrap.width - tip.offsetWidth - 4) + 'px'; // CSSOM, allowed by the CSP
    tip.style.top = Math.max(0, ev.clientY - wrap.top - tip.offsetHeight - 8) + 'px';
  }
  function wireChart() {
    const c = $('chart');
    c.addEventListener('pointerdown', (ev) => {
      if (!st.geo || ev.button !== 0 || ev.target.closest('.mark')) return; // a mark's click opens its record
      const x = chartX(ev);
      if (x < st.geo.M.l || x > st.geo.M.l + st.geo.pw) return;
      st.drag = { x0: x, x1: x };
      c.setPointerCapture(ev.pointerId);
      ev.preventDefault();
    });
    c.addEventListener('pointermove', (ev) => {
      if (!st.geo) return;
      if (!st.drag) { showTip(ev); return; }
      const g = st.geo, x = Math.min(Math.max(chartX(ev), g.M.l), g.M.l + g.pw);
      st.drag.x1 = x;
      g.sel.setAttribute('x', Math.min(st.drag.x0, x)); g.sel.setAttribute('width', Math.abs(x - st.drag.x0));
      g.sel.setAttribute('visibility', 'visible');
      $('tip').hidden = true;
    });
    c.addEventListener('pointerup', () => {
      const d = st.drag;
      if (!d) return;
      st.drag = null;
      if (Math.abs(d.x1 - d.x0) < 4) { const i = bucketAt(d.x0); if (i >= 0) pickBucket(i); else if (st.tlDirty) renderTimeline(); }
      else zoomTo(tAt(Math.min(d.x0, d.x1)), tAt(Math.max(d.x0, d.x1)));
    });
    c.addEventListener('pointerleave', () => { $('tip').hidden = true; });
    let rt = null;
    window.addEventListener('resize', () => { clearTimeout(rt); rt = setTimeout(() => st.tl && renderTimeline(), 150); });
  }
  function pickBucket(i) {
    const b = st.geo.buckets[i], t = ms(b.t);
    st.bucket = { since: t, until: t + st.geo.step };
    renderTimeline(); renderWindowLabel();
    loadRecords().catch(showError);
  }
  function freeze() {
    if (st.live) { st.live = false; st.frozenAt = st.lastSeen; st.newSince = 0; }
  }
  function setWindow(since, until) {
    freeze();
    st.win = { since: Math.round(since), until: Math.round(until) };
    st.bucket = null;
    updateControls();
    return loadWindow();
  }
  function zoomTo(a, b) {
    if (b - a < 1000) { const c = (a + b) / 2; a = c - 500; b = c + 500; } // at least one second
    st.zoom.push({ live: st.live, win: st.win });
    setWindow(a, b).catch(showError);
  }
  function goLive() {
    st.live = true; st.zoom = []; st.bucket = null; st.newSince = 0;
    updateControls();
    refresh({ now: true, win: true }, true);
  }
  function updateControls() {
    const width = st.win ? st.win.until - st.win.since : 0;
    for (const b of document.querySelectorAll('button[data-range]')) {
      b.setAttribute('aria-pressed', String(st.live ? b.dataset.range === st.range : RANGES[b.dataset.range] === width));
    }
    const live = $('live');
    live.setAttribute('aria-pressed', String(st.live));
    live.textContent = st.live ? '● live' : '○ live';
    $('pause').disabled = !st.live;
    const z = $('zoom-out');
    z.disabled = st.live && !st.zoom.length;
    z.textContent = st.zoom.length ? 'zoom out' : 'back to live';
    renderWindowLabel();
  }
  function renderWindowLabel() {
    const w = st.win, el = $('window-label');
    if (!w) return;
    el.replaceChildren((st.live ? 'Live: last ' + st.range + ', ' : 'Fixed window: ') + day(w.since) + ' ' + hms(w.since, w.since % 1000 !== 0) + ' – ' +
      (day(w.until) !== day(w.since) ? day(w.until) + ' ' : '') + hms(w.until, w.until % 1000 !== 0) + ' UTC (' + dur(w.until - w.since) + ')');
    if (!st.live && st.newSince > 0) {
      el.append(' · ', h('strong', { cls: 'new', text: num(st.newSince) + (st.newSince === 1 ? ' new record' : ' new records') + ' since' }), ' ', h('button', { type: 'button', cls: 'link', text: 'back to live', onclick: goLive }));
    }
  }

  // ---- Records -------------------------------------------------------------
  const COLS = [
    ['time', 'time (UTC)', (r) => ms(r.time)], ['agent', 'agent', (r) => r.agent || ''], ['vendor', 'vendor', (r) => r.vendor || ''],
    ['op', 'operation / path', (r) => (r.operation || '') + (r.path || '')], ['decision', 'decision', (r) => r.event || r.decision || ''],
    ['code', 'code / rule', (r) => (r.code || '') + (r.rule || '')], ['amount', 'amount', (r) => parseFloat(r.amount) || 0],
    ['customer', 'customer', (r) => r.customer || ''], ['status', 'status', (r) => +r.status || 0],
  ];
  function buildHead() {
    $('records-head').replaceChildren(...COLS.map(([k, t]) => h('th', { scope: 'col', 'data-key': k },
      h('button', { type: 'button', cls: 'sort', text: t, onclick: () => { st.sort = { key: k, dir: st.sort.key === k ? -st.sort.dir : 1 }; renderRecords(); } }))));
  }
  function renderRecords() {
    const r = st.recs || {}, list = arr(r.records).slice();
    const col = COLS.find((c) => c[0] === st.sort.key) || COLS[0], dir = st.sort.dir;
    list.sort((a, b) => { const x = col[2](a), y = col[2](b); return (x < y ? -1 : x > y ? 1 : (+a.id || 0) - (+b.id || 0)) * dir; });
    for (const th of $('records-head').children) {
      if (th.dataset.key === col[0]) th.setAttribute('aria-sort', dir > 0 ? 'ascending' : 'descending'); else th.removeAttribute('aria-sort');
    }
    const sig = [r.total, r.truncated, st.sort.key, dir, list.map((x) => x.id).join()].join('|');
    if (sig !== st.recKey) { st.recKey = sig; $('records-body').replaceChildren(...rowsFor(list)); } // unchanged: keep rows (and clicks) stable
    const info = $('records-info'), w = st.bucket || st.win, total = r.total == null ? list.length : r.total;
    info.replaceChildren(r.truncated ? h('strong', { cls: 'warn', text: 'showing first ' + num(list.length) + ' of ' + num(total) + ': narrow the window' })
      : num(total) + ' record' + (total === 1 ? '' : 's'));
    if (w) info.append(' · ' + (st.bucket ? 'bucket ' : '') + hms(w.since, true) + ' – ' + hms(w.until, true) + ' UTC');
    if (st.bucket) info.append(' ', h('button', { type: 'button', cls: 'link', text: 'show the whole window',
      onclick: () => { st.bucket = null; renderTimeline(); renderWindowLabel(); loadRecords().catch(showError); } }));
    fillFilterOptions();
  }
  function rowsFor(list) {
    const rows = list.map((x) => {
      const ev = !!x.event, t = ms(x.time);
      const tr = h('tr', { 'data-id': x.id, 'data-decision': x.decision || '', cls: ev ? 'event' : 'd-row-' + (x.decision || ''), tabindex: 0, title: 'record #' + x.id + ': select for the whole record' },
        h('td', { cls: 'time', title: x.time || '' }, hms(t, true)),
        h('td', { text: x.agent || '' }), h('td', { text: x.vendor || '' }),
        h('td', {}, x.operation || '', x.path ? h('div', { cls: 'sub', text: (x.method || '') + ' ' + (x.host || '') + x.path }) : ''),
        h('td', {}, ev ? h('em', { text: x.event }) : h('span', { cls: 'd d-' + x.decision, text: dlabel(x.decision) })),
        h('td', {}, x.code ? h('code', { text: x.code }) : '', x.rule ? h('div', { cls: 'sub', text: x.rule }) : ''),
        h('td', { cls: 'num', text: x.amount && x.amount !== '' ? x.amount + ' ' + (x.currency || '') : '' }),
        h('td', { text: x.customer || '' }), h('td', { cls: 'num', text: x.status ? String(x.status) : '' }));
      tr.addEventListener('click', () => openRecord(x.id));
      tr.addEventListener('keydown', (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); openRecord(x.id); } });
      return tr;
    });
    if (!rows.length) rows.push(h('tr', {}, h('td', { colspan: COLS.length, cls: 'muted', text: 'No records in this window with these filters.' })));
    return rows;
  }
  function fillFilterOptions() {
    const n = st.now || {}, agents = new Set(arr(n.revoked)), vendors = new Set();
    for (const l of [...arr(n.limits), ...arr(n.spend), ...arr(n.customers)]) { if (l.agent) agents.add(l.agent); if (l.vendor) vendors.add(l.vendor); }
    for (const x of arr(st.recs && st.recs.records)) { if (x.agent) agents.add(x.agent); if (x.vendor) vendors.add(x.vendor); }
    for (const [id, set] of [['f-agent', agents], ['f-vendor', vendors]]) {
      const sel = $(id), v = sel.value;
      if (v) set.add(v);
      const want = ['', ...[...set].sort()];
      if (want.join('\n') === [...sel.options].map((o) => o.value).join('\n')) continue; // unchanged: don't disturb an open select
      sel.replaceChildren(...want.map((x) => h('option', { value: x, text: x || 'all' })));
      sel.value = v;
    }
  }
  function wireFilters() {
    $('f-decision').append(...DECISIONS.map((d) => h('option', { value: d, text: dlabel(d) })));
    const go = () => loadRecords().catch(showError);
    for (const id of ['f-agent', 'f-vendor', 'f-decision']) $(id).addEventListener('change', go);
    let t = null;
    $('f-customer').addEventListener('input', () => { clearTimeout(t); t = setTimeout(go, 350); });
  }

  // ---- one record, in a side panel ---------------------------------------------
  const ORDER = ['id', 'time', 'event', 'agent', 'vendor', 'decision', 'code', 'rule', 'reason', 'status', 'method', 'host', 'path', 'operation',
    'amount', 'reserved', 'settled', 'currency', 'outcome', 'customer', 'account', 'params', 'holds', 'request_id', 'duration_ms', 'policy', 'prev'];
  function table(rows, cols) {
    return h('table', { cls: 'small' }, h('thead', {}, h('tr', {}, ...cols.map((c) => h('th', { scope: 'col', text: c })))),
      h('tbody', {}, ...rows.map((r) => h('tr', {}, ...cols.map((c) => h('td', { text: fmt(r[c]) }))))));
  }
  const fmt = (v) => (v == null ? '' : typeof v === 'object' ? JSON.stringify(v) : String(v));
  async function openRecord(id) {
    const dlg = $('detail'), body = $('detail-body');
    $('detail-h').textContent = 'Record #' + id;
    body.replaceChildren(h('p', { cls: 'muted', text: 'loading…' }));
    if (!dlg.open) dlg.showModal();
    let r;
    try { r = await api('/api/records/' + encodeURIComponent(id)); } catch (e) {
      body.replaceChildren(h('p', { cls: 'bad', text: 'Could not load record #' + id + ': ' + e.message })); return;
    }
    if ($('detail-h').textContent !== 'Record #' + id) return; // another row was opened meanwhile
    const keys = [...ORDER.filter((k) => k in r), ...Object.keys(r).filter((k) => !ORDER.includes(k))];
    const dl = h('dl', { cls: 'fields' });
    for (const k of keys) {
      const v = r[k];
      if (v === '' || v == null) continue;
      let dd;
      if (k === 'params' && typeof v === 'object' && !Array.isArray(v)) dd = table(Object.keys(v).map((p) => ({ param: p, value: v[p] })), ['param', 'value']);
      else if (k === 'holds' && Array.isArray(v)) dd = v.length ? table(v, [...new Set(v.flatMap((x) => Object.keys(obj(x))))]) : 'none';
      else if (k === 'decision') dd = h('span', { cls: 'd d-' + v, text: dlabel(v) });
      else if (k === 'time') dd = v + ' (' + hms(ms(v), true) + ' UTC)';
      else if (k === 'prev') dd = h('code', { text: fmt(v) + '  (hash of the record before: the chain link)' });
      else if (k === 'policy' || k === 'request_id') dd = h('code', { text: fmt(v) });
      else dd = fmt(v);
      dl.append(h('dt', { text: k }), h('dd', {}, dd));
    }
    body.replaceChildren(dl);
  }

  // ---- events: SSE, falling back to polling --------------------------------------
  function onChange(lastId) {
    if (isFinite(lastId) && lastId > 0) {
      if (st.live) st.lastSeen = Math.max(st.lastSeen, lastId);
      else if (st.frozenAt && lastId > st.frozenAt) { st.newSince = lastId - st.frozenAt; renderWindowLabel(); }
      else if (!st.frozenAt) st.frozenAt = lastId; // nothing seen before the freeze: count from here
    }
    refresh({ now: true, win: st.live });
  }
  function startPoll() {
    if (st.poll || st.gated) return;
    st.poll = setInterval(() => refresh({ now: true, win: st.live }), 2000);
  }
  function stopPoll() { clearInterval(st.poll); st.poll = null; }
  function openEvents() {
    if (st.gated) return;
    if (!window.EventSource) { startPoll(); return; }
    const es = new EventSource('/api/events'); // same origin: the cookie is sent
    st.es = es;
    es.addEventListener('change', (ev) => { let d = {}; try { d = JSON.parse(ev.data); } catch (e) { /* ignore */ } onChange(+d.last_id); });
    es.addEventListener('open', () => { stopPoll(); refresh({ now: true, win: st.live }); });
    es.addEventListener('error', () => {
      es.close();
      if (st.es === es) st.es = null;
      if (st.gated) return;
      startPoll(); // a poll also notices a 401
      setTimeout(openEvents, 5000);
    });
  }

  // ---- start ------------------------------------------------------------------
  function wire() {
    buildDefs(); buildHead(); wireChart(); wireFilters();
    for (const b of document.querySelectorAll('button[data-range]')) {
      b.addEventListener('click', () => {
        st.range = b.dataset.range;
        if (st.live) { updateControls(); refresh({ now: true, win: true }, true); return; }
        st.zoom = [];
        setWindow(st.win.until - RANGES[st.range], st.win.until).catch(showError);
      });
    }
    $('live').addEventListener('click', goLive); // idempotent: always "follow now"
    $('pause').addEventListener('click', () => { freeze(); updateControls(); });
    $('zoom-out').addEventListener('click', () => {
      const p = st.zoom.pop();
      if (!p || p.live) { goLive(); return; }
      st.win = p.win; st.bucket = null; updateControls();
      loadWindow().catch(showError);
    });
    $('confirm-yes').addEventListener('click', () => { const p = pendingAct; pendingAct = null; $('confirm').close(); if (p) doAct(p); });
    $('confirm-no').addEventListener('click', () => { pendingAct = null; $('confirm').close(); });
    $('detail-close').addEventListener('click', () => $('detail').close());
    $('detail').addEventListener('click', (e) => { if (e.target === $('detail')) $('detail').close(); }); // click on the backdrop
    // Hook for tests and for links: show exactly this window, not following now.
    window.keybrakeSetWindow = (sinceISO, untilISO) => { st.zoom = []; return setWindow(ms(sinceISO), ms(untilISO)).then(() => undefined); };
  }
  async function boot() {
    try {
      st.session = await api('/api/session');
      await loadNow();
      if (!st.win) st.win = liveWindow();
      updateControls();
      await (st.live ? loadWindow() : Promise.all([loadTimeline(), loadRecords()]));
      clearError();
      st.ready = true;
      document.body.dataset.ready = '1';
      openEvents();
      // A live window slides even when nothing is logged.
      st.tick = setInterval(() => { if (st.live) refresh({ now: true, win: true }); }, 5000);
    } catch (e) {
      if (st.gated) return;
      showError(e);
      setTimeout(boot, 3000);
    }
  }
  wire();
  boot();
})();
