/* Cohort dashboard: plain JS, no build step, no network access beyond this server. */
(function () {
  'use strict';

  var T0 = performance.now();
  var root = document.documentElement;
  var $ = function (id) { return document.getElementById(id); };
  var TOKEN_KEY = 'cohort.token';

  // ---------------------------------------------------------------- helpers
  var ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  function esc(s) { return s == null ? '' : String(s).replace(/[&<>"']/g, function (c) { return ESC[c]; }); }
  var nf = new Intl.NumberFormat('en-US');
  function num(n) { return n == null ? '—' : nf.format(n); }
  function pct(share) {
    if (share == null || !isFinite(share)) return '—';
    var p = share * 100;
    if (p === 0) return '0%';
    if (p < 0.01) return '<0.01%';
    return (p < 10 ? p.toFixed(2) : p.toFixed(1)) + '%';
  }
  function fmtTime(s) {
    if (!s) return '—';
    var d = new Date(s);
    if (isNaN(d)) return String(s);
    return d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z').replace(/:00Z$/, 'Z') ;
  }
  function ago(s) {
    var d = new Date(s);
    if (isNaN(d)) return '';
    var sec = Math.round((Date.now() - d.getTime()) / 1000);
    if (sec < 0) return '';
    if (sec < 60) return 'just now';
    if (sec < 3600) return Math.round(sec / 60) + ' min ago';
    if (sec < 86400) return Math.round(sec / 3600) + ' h ago';
    return Math.round(sec / 86400) + ' d ago';
  }
  function debounce(fn, ms) {
    var t = null;
    return function () { var a = arguments; clearTimeout(t); t = setTimeout(function () { fn.apply(null, a); }, ms); };
  }

  // ------------------------------------------------------------------ API
  var tokenPrompt = null; // one shared prompt for concurrent 401s

  function askToken(message) {
    if (tokenPrompt) return tokenPrompt;
    tokenPrompt = new Promise(function (resolve) {
      var dlg = $('token-dialog');
      $('token-error').textContent = message || '';
      $('token-input').value = '';
      var form = $('token-form');
      function done(ev) {
        ev.preventDefault();
        var v = $('token-input').value.trim();
        if (!v) return;
        form.removeEventListener('submit', done);
        try { sessionStorage.setItem(TOKEN_KEY, v); } catch (e) { memToken = v; }
        dlg.close();
        tokenPrompt = null;
        resolve(v);
      }
      form.addEventListener('submit', done);
      dlg.addEventListener('cancel', function (e) { e.preventDefault(); });
      if (dlg.showModal) dlg.showModal(); else dlg.setAttribute('open', '');
      $('token-input').focus();
    });
    return tokenPrompt;
  }
  var memToken = null;
  function getToken() {
    try { return sessionStorage.getItem(TOKEN_KEY) || memToken; } catch (e) { return memToken; }
  }

  /** fetch JSON; resolves {status, body}; handles 401 by asking for the token and retrying. */
  function api(method, path, body, opts) {
    opts = opts || {};
    var headers = { 'Accept': 'application/json' };
    var tok = getToken();
    if (tok) headers['Authorization'] = 'Bearer ' + tok;
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    return fetch(path, {
      method: method, headers: headers, cache: 'no-store', credentials: 'same-origin',
      body: body === undefined ? undefined : JSON.stringify(body), signal: opts.signal
    }).then(function (res) {
      return res.text().then(function (text) {
        var data = null;
        try { data = text ? JSON.parse(text) : null; } catch (e) { data = { error: text || res.statusText }; }
        if (res.status === 401) {
          try { sessionStorage.removeItem(TOKEN_KEY); } catch (e) { /* ignore */ }
          memToken = null;
          var msg = tok ? 'The token was not accepted' + (data && data.error ? ': ' + data.error : '.') : '';
          return askToken(msg).then(function () { return api(method, path, body, opts); });
        }
        return { status: res.status, body: data };
      });
    });
  }

  // ---------------------------------------------------------------- state
  var S = {
    dash: null,
    rows: [],            // prepared group rows
    byId: Object.create(null),
    sort: { key: 'members', dir: -1 },
    filter: '',
    selected: [],        // group ids, in pick order
    schema: null,
    sizingChecked: false
  };

  // --------------------------------------------------------------- header
  function renderHeader(d) {
    $('run-id').textContent = d.run_id || '—';
    $('run-id').title = d.run_id || '';
    $('run-as-of').textContent = fmtTime(d.as_of);
    $('run-loaded').textContent = fmtTime(d.loaded_at);
    $('run-loaded').title = ago(d.loaded_at);
    $('run-customers').textContent = num(d.customers);
    $('run-groups').textContent = num((d.groups || []).length);
    var w = d.warnings || [];
    var box = $('run-warnings');
    if (w.length) {
      box.innerHTML = '<details><summary><strong>' + w.length + ' run warning' + (w.length > 1 ? 's' : '') +
        '</strong>: ' + esc(w[0]).slice(0, 160) + '</summary><ul>' +
        w.map(function (x) { return '<li data-testid="run-warning">' + esc(x) + '</li>'; }).join('') + '</ul></details>';
      box.hidden = false;
    } else { box.hidden = true; box.textContent = ''; }
  }

  // ---------------------------------------------------------- sparkline
  function sparkline(hist) {
    var W = 96, H = 24, P = 2;
    if (!hist || !hist.length) return '<span class="muted">—</span>';
    var min = Infinity, max = -Infinity, i, v;
    for (i = 0; i < hist.length; i++) { v = hist[i].members; if (v < min) min = v; if (v > max) max = v; }
    var span = max - min || 1, n = hist.length;
    var pts = '', x, y;
    for (i = 0; i < n; i++) {
      x = n === 1 ? W / 2 : P + (W - 2 * P) * i / (n - 1);
      y = max === min ? H / 2 : H - P - (H - 2 * P) * (hist[i].members - min) / span;
      pts += (i ? ' ' : '') + x.toFixed(1) + ',' + y.toFixed(1);
    }
    var first = hist[0].members, last = hist[n - 1].members;
    var label = n === 1 ? 'one run: ' + num(last) : n + ' runs: ' + num(first) + ' → ' + num(last) +
      ' (min ' + num(min) + ', max ' + num(max) + ')';
    return '<svg class="spark" width="' + W + '" height="' + H + '" viewBox="0 0 ' + W + ' ' + H +
      '" role="img"><title>' + label + '</title>' +
      (n > 1 ? '<polyline points="' + pts + '"/>' : '') +
      '<circle cx="' + x.toFixed(1) + '" cy="' + y.toFixed(1) + '" r="2"/></svg>';
  }

  // --------------------------------------------------------------- table
  function prepare(d) {
    var customers = d.customers || 0;
    S.byId = Object.create(null);
    S.rows = (d.groups || []).map(function (g) {
      var share = g.share != null ? g.share : (customers ? g.members / customers : null);
      var r = {
        g: g, id: g.id, name: g.name || '', members: g.members || 0, share: share,
        change: g['new'] || (g.entered == null && g.exited == null) ? null : (g.entered || 0) - (g.exited || 0),
        warnings: (g.warnings || []).length,
        hay: (g.id + '\u0000' + (g.name || '') + '\u0000' + (g.description || '')).toLowerCase(),
        html: null
      };
      S.byId[g.id] = r;
      return r;
    });
    // The datalist for the overlap picker and the "in group" condition.
    var opts = '';
    for (var i = 0; i < S.rows.length; i++) {
      opts += '<option value="' + esc(S.rows[i].id) + '">' + esc(S.rows[i].name) + '</option>';
    }
    $('group-ids').innerHTML = opts;
  }

  function rowHtml(r) {
    if (r.html) return r.html;
    var g = r.g;
    var name = g.name && g.name !== g.id ? '<span class="gname">' + esc(g.name) + '</span>' : '';
    var desc = g.description ? '<span class="gdesc">' + esc(g.description) + '</span>' : '';
    var change;
    if (g['new']) {
      // First run, or a group the previous run did not have: nothing to compare with.
      change = '<span class="badge new" title="not in the previous run" data-testid="group-new">new</span>';
    } else if (g.entered == null && g.exited == null) {
      change = '<span class="muted" title="the change since the previous run is not available">—</span>';
    } else {
      change = '<span class="plus" title="entered since the previous run">+' + num(g.entered || 0) +
        '</span> <span class="minus" title="exited since the previous run">−' + num(g.exited || 0) + '</span>';
    }
    var warn = r.warnings
      ? '<span class="badge warn" tabindex="0" title="' + esc(g.warnings.join('\n')) + '" data-testid="group-warnings">' +
        r.warnings + ' warning' + (r.warnings > 1 ? 's' : '') + '</span>'
      : '';
    r.html = '<tr data-testid="group-row" data-group-id="' + esc(g.id) + '">' +
      '<td class="c-sel"><input type="checkbox" aria-label="Select ' + esc(g.id) + ' for overlap" data-sel="' + esc(g.id) + '"></td>' +
      '<th scope="row" class="c-group"' + (g.description ? ' title="' + esc(g.description) + '"' : '') + '>' +
      '<code class="gid">' + esc(g.id) + '</code>' + name + desc + '</th>' +
      '<td class="num" data-testid="group-members">' + num(g.members) + '</td>' +
      '<td class="num share"><span class="sharebar" aria-hidden="true"><i style="width:' +
      Math.min(100, Math.max(0, (r.share || 0) * 100)).toFixed(1) + '%"></i></span>' + pct(r.share) + '</td>' +
      '<td class="num change">' + change + '</td>' +
      '<td class="c-spark">' + sparkline(g.history) + '</td>' +
      '<td>' + warn + '</td></tr>';
    return r.html;
  }

  function cmp(key, dir) {
    return function (a, b) {
      var x = a[key], y = b[key];
      if (key === 'id') return dir * (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
      if (x == null && y == null) return a.id < b.id ? -1 : 1;
      if (x == null) return 1;   // nulls last whatever the direction
      if (y == null) return -1;
      if (x !== y) return dir * (x - y);
      return a.id < b.id ? -1 : 1;
    };
  }

  // Rows are rendered in two steps: the first screenful synchronously (one innerHTML), the
  // rest right after that frame is painted (one insertAdjacentHTML). The table has a fixed
  // layout, so the later rows never move the first ones.
  var FIRST_ROWS = 60, restTimer = null, renderSeq = 0;
  function afterPaint(fn) {
    requestAnimationFrame(function () { setTimeout(fn, 0); });
  }
  function renderTable(onPainted) {
    var t = performance.now(), seq = ++renderSeq;
    var f = S.filter.trim().toLowerCase();
    var rows = f ? S.rows.filter(function (r) { return r.hay.indexOf(f) >= 0; }) : S.rows.slice();
    rows.sort(cmp(S.sort.key, S.sort.dir));
    var parts = new Array(rows.length);
    for (var i = 0; i < rows.length; i++) parts[i] = rowHtml(rows[i]);
    var body = $('groups-body');
    body.innerHTML = parts.slice(0, FIRST_ROWS).join('');
    root.setAttribute('data-rows-complete', rows.length <= FIRST_ROWS ? 'true' : 'false');
    markSelected(body);
    clearTimeout(restTimer);
    var ms = performance.now() - t;
    afterPaint(function () {
      if (seq !== renderSeq) return;
      if (onPainted) onPainted();
      if (rows.length > FIRST_ROWS) {
        body.insertAdjacentHTML('beforeend', parts.slice(FIRST_ROWS).join(''));
        markSelected(body);
        root.setAttribute('data-rows-complete', 'true');
      }
    });
    $('groups-empty').hidden = rows.length > 0 || !S.rows.length;
    $('group-count').textContent = f ? rows.length + ' of ' + S.rows.length + ' groups' : S.rows.length + ' groups';
    var ths = document.querySelectorAll('#groups-table th[data-sort]');
    for (var k = 0; k < ths.length; k++) {
      var key = ths[k].getAttribute('data-sort');
      ths[k].setAttribute('aria-sort', key === S.sort.key ? (S.sort.dir > 0 ? 'ascending' : 'descending') : 'none');
    }
    return ms;
  }
  function markSelected(body) {
    if (!S.selected.length) return;
    var sel = Object.create(null);
    S.selected.forEach(function (id) { sel[id] = true; });
    var boxes = body.querySelectorAll('input[data-sel]');
    for (var j = 0; j < boxes.length; j++) if (sel[boxes[j].getAttribute('data-sel')]) boxes[j].checked = true;
  }

  function onSortClick(ev) {
    var th = ev.target.closest('th[data-sort]');
    if (!th) return;
    var key = th.getAttribute('data-sort');
    if (S.sort.key === key) S.sort.dir = -S.sort.dir;
    else S.sort = { key: key, dir: key === 'id' ? 1 : -1 };
    renderTable();
  }

  // ------------------------------------------------------------ selection
  function setSelected(ids) {
    var seen = Object.create(null);
    S.selected = ids.filter(function (id) {
      if (seen[id] || !S.byId[id]) return false;
      seen[id] = true; return true;
    });
    var n = S.selected.length;
    $('selected-count').textContent = n;
    $('compare-selected').disabled = n < 2;
    $('compare-selected').textContent = n < 2 ? 'Compare selected' : 'Compare ' + n + ' groups';
    $('clear-selection').disabled = n === 0;
    var boxes = $('groups-body').querySelectorAll('input[data-sel]');
    var sel = Object.create(null);
    S.selected.forEach(function (id) { sel[id] = true; });
    for (var j = 0; j < boxes.length; j++) boxes[j].checked = !!sel[boxes[j].getAttribute('data-sel')];
    renderChips();
    overlapStale = true;
    if (currentView === 'overlap') loadOverlap();
  }

  function renderChips() {
    $('overlap-chips').innerHTML = S.selected.map(function (id) {
      return '<li class="chip"><code>' + esc(id) + '</code><button type="button" data-unpick="' + esc(id) +
        '" aria-label="Remove ' + esc(id) + '">×</button></li>';
    }).join('');
  }

  // -------------------------------------------------------------- overlap
  var overlapStale = true, overlapSeq = 0;
  var MAX_OVERLAP = 40;

  function loadOverlap() {
    if (!overlapStale) return;
    overlapStale = false;
    var ids = S.selected.slice(0, MAX_OVERLAP);
    var status = $('overlap-status');
    if (ids.length < 2) {
      status.textContent = ids.length ? 'Pick at least one more group.' : 'No groups picked yet.';
      $('overlap-map').innerHTML = '';
      return;
    }
    var seq = ++overlapSeq;
    status.textContent = 'Computing overlap of ' + ids.length + ' groups…' +
      (S.selected.length > MAX_OVERLAP ? ' (first ' + MAX_OVERLAP + ' only)' : '');
    api('POST', '/v1/overlap', { groups: ids }).then(function (res) {
      if (seq !== overlapSeq) return;
      if (res.status !== 200) {
        status.textContent = 'Overlap failed: ' + ((res.body && res.body.error) || ('HTTP ' + res.status));
        return;
      }
      status.textContent = '';
      renderHeatmap(res.body);
    }).catch(function (e) {
      if (seq === overlapSeq) status.textContent = 'Overlap failed: ' + e.message;
    });
  }

  function renderHeatmap(o) {
    var ids = o.groups, m = o.matrix, sizes = o.members || ids.map(function (_, i) { return m[i][i]; });
    var n = ids.length;
    var html = '<table class="heatmap" data-testid="heatmap"><caption class="sr-only">Customers in both groups: row group and column group</caption><thead><tr><th scope="col"><span class="sr-only">Row group</span></th>';
    for (var j = 0; j < n; j++) html += '<th scope="col" class="hcol"><span title="' + esc(ids[j]) + '">' + esc(ids[j]) + '</span></th>';
    html += '</tr></thead><tbody>';
    for (var i = 0; i < n; i++) {
      html += '<tr><th scope="row" class="hrow" title="' + esc(ids[i]) + ' (' + num(sizes[i]) + ')">' + esc(ids[i]) +
        ' <span class="muted">' + num(sizes[i]) + '</span></th>';
      for (j = 0; j < n; j++) {
        var v = m[i][j], ofRow = sizes[i] ? v / sizes[i] : 0, ofCol = sizes[j] ? v / sizes[j] : 0;
        var union = sizes[i] + sizes[j] - v, jac = union ? v / union : 0;
        // colour: share of the row group; the diagonal is neutral
        var diag = i === j;
        var light = diag ? 93 : Math.round(97 - ofRow * 55);
        var title = diag ? ids[i] + ': ' + num(v) + ' members'
          : ids[i] + ' ∩ ' + ids[j] + ': ' + num(v) + '\n' + pct(ofRow) + ' of ' + ids[i] + ', ' + pct(ofCol) + ' of ' + ids[j] +
            '\nJaccard ' + jac.toFixed(3);
        html += '<td class="hcell' + (diag ? ' diag' : '') + (light < 62 ? ' dark' : '') + '" style="background:hsl(214,70%,' + light + '%)" title="' +
          esc(title) + '" data-testid="overlap-cell" data-row="' + esc(ids[i]) + '" data-col="' + esc(ids[j]) + '" data-count="' + v + '">' +
          '<span class="hnum">' + num(v) + '</span><span class="hpct">' + (diag ? '100%' : pct(ofRow)) + '</span></td>';
      }
      html += '</tr>';
    }
    html += '</tbody></table>';
    $('overlap-map').innerHTML = html;
  }

  // ---------------------------------------------------------------- views
  var currentView = 'groups';
  function route() {
    var h = location.hash.replace(/^#/, '');
    var view = h.split(/[=?]/)[0] || 'groups';
    if (['groups', 'overlap', 'build'].indexOf(view) < 0) view = 'groups';
    var arg = h.indexOf('=') >= 0 ? decodeURIComponent(h.slice(h.indexOf('=') + 1)) : null;
    currentView = view;
    ['groups', 'overlap', 'build'].forEach(function (v) {
      $('view-' + v).hidden = v !== view;
      $('tab-' + v).setAttribute('aria-selected', v === view ? 'true' : 'false');
    });
    if (view === 'overlap') {
      if (arg && S.dash) setSelected(arg.split(',').map(function (s) { return s.trim(); }).filter(Boolean));
      else loadOverlap();
    }
    if (view === 'build') {
      initSizing(arg);
    }
  }

  // ============================================================ live sizing
  // The form model: {include: [clause], exclude: [clause]}; clause {match, conditions: [cond]}
  // cond kinds: attr {attribute, op, value, values, ignore_case}, group {op, value}, sql {sql},
  // events {events, aggregate, column, within_last, op, value}.
  var M = { include: [], exclude: [] };
  // The operator and aggregate vocabulary is the server's registry (`vocabulary` of
  // GET /v1/schema): spellings, arities, ignore_case and aggregates are never listed here.
  function vocab() { return (S.schema && S.schema.vocabulary) || { operators: [], aggregates: [] }; }
  function groupOps() {
    return vocab().operators.filter(function (o) { return o.evaluator === 'bitmaps'; })
      .map(function (o) { return { op: o.op, label: o.aliases[0] || o.op }; });
  }
  function aggregates() { return vocab().aggregates.map(function (a) { return a.aggregate; }); }
  function canonicalOp(op) {
    if (op == null) return '';
    var k = String(op).trim().toLowerCase().replace(/\u2019/g, "'");
    var ops = vocab().operators;
    for (var i = 0; i < ops.length; i++) {
      if (ops[i].op === k || ops[i].aliases.indexOf(k) >= 0) return ops[i].op;
    }
    return k;
  }
  function acceptsIgnoreCase(op) {
    var ops = vocab().operators;
    for (var i = 0; i < ops.length; i++) if (ops[i].op === op) return ops[i].ignore_case;
    return false;
  }

  function column(name) {
    var cols = (S.schema && S.schema.columns) || [];
    for (var i = 0; i < cols.length; i++) if (cols[i].name === name) return cols[i];
    return null;
  }
  function opsFor(kind) {
    var ops = (S.schema && S.schema.operators) || {};
    return ops[kind] || ops.other || [];
  }
  function opInfo(kind, op) {
    var list = opsFor(kind);
    for (var i = 0; i < list.length; i++) if (list[i].op === op) return list[i];
    return null;
  }
  function allOps() { // every operator known to the schema, for a condition on an unknown attribute
    var ops = (S.schema && S.schema.operators) || {}, seen = {}, out = [];
    Object.keys(ops).forEach(function (k) {
      ops[k].forEach(function (o) { if (!seen[o.op]) { seen[o.op] = 1; out.push(o); } });
    });
    return out;
  }
  function arityOf(c) {
    var col = column(c.attribute);
    var info = col ? opInfo(col.kind, c.op) : null;
    if (!info) { var all = allOps(); for (var i = 0; i < all.length; i++) if (all[i].op === c.op) info = all[i]; }
    return info ? info.arity : 'one';
  }

  function newAttrCond() {
    var cols = (S.schema && S.schema.columns) || [];
    var col = cols[0];
    var c = { kind: 'attr', attribute: col ? col.name : '', op: '', value: '', values: [], lo: '', hi: '', ignore_case: false };
    if (col) c.op = (opsFor(col.kind)[0] || {}).op || '';
    return c;
  }
  function newCond(kind) {
    if (kind === 'group') return { kind: 'group', op: 'in_group', value: (S.rows[0] || {}).id || '' };
    if (kind === 'sql') return { kind: 'sql', sql: '' };
    if (kind === 'events') return { kind: 'events', events: (S.schema.events || [])[0] || '', aggregate: 'count', column: '', within_last: '90d', op: 'gte', value: '1' };
    return newAttrCond();
  }

  // --- model <-> JSON definition
  function typed(raw, kind) {
    if (raw == null) return raw;
    var s = String(raw).trim();
    if ((kind === 'number' || kind === 'unknown') && s !== '' && !isNaN(Number(s))) return Number(s);
    if (kind === 'boolean' && (s === 'true' || s === 'false')) return s === 'true';
    return s;
  }
  function splitList(s) {
    // comma-separated; a value may be quoted to hold a comma: "Washington, D.C."
    var out = [], re = /\s*(?:"((?:[^"\\]|\\.)*)"|([^,]*))\s*(?:,|$)/g, m;
    s = String(s || '');
    while ((m = re.exec(s)) && m[0] !== '') {
      var v = m[1] != null ? m[1].replace(/\\(.)/g, '$1') : m[2].trim();
      if (v !== '' || m[1] != null) out.push(v);
      if (re.lastIndex >= s.length) break;
    }
    return out;
  }
  function joinList(vals) {
    return (vals || []).map(function (v) { v = String(v); return /[,"]/.test(v) ? '"' + v.replace(/(["\\])/g, '\\$1') + '"' : v; }).join(', ');
  }

  function condToJson(c) {
    if (c.kind === 'sql') return { sql: c.sql };
    if (c.kind === 'group') return { op: c.op === 'not_in_group' ? 'not_in_group' : 'in_group', value: c.value };
    if (c.kind === 'events') {
      var e = { events: c.events, aggregate: c.aggregate };
      if (c.aggregate !== 'count' && c.column) e.column = c.column;
      if (c.within_last) e.within_last = c.within_last;
      e.op = c.op;
      e.value = /^(count|count_distinct|sum|min|max|avg)$/.test(c.aggregate) ? typed(c.value, 'number') : String(c.value).trim();
      return e;
    }
    // an attribute the schema does not know: send what was typed, a number if it reads as one
    var col = column(c.attribute), kind = col ? col.kind : 'unknown';
    var o = { attribute: c.attribute, op: c.op };
    var ar = arityOf(c);
    var vkind = (c.op === 'within_last' || c.op === 'not_within_last') ? 'string' : (kind === 'list' ? 'string' : kind);
    if (ar === 'one') o.value = typed(c.value, vkind);
    else if (ar === 'list') o.values = splitList(c.listText).map(function (v) { return typed(v, vkind); });
    else if (ar === 'two') o.values = [typed(c.lo, vkind), typed(c.hi, vkind)];
    if (c.ignore_case && showsIgnoreCase(c)) o.ignore_case = true;
    return o;
  }
  function showsIgnoreCase(c) {
    var col = column(c.attribute);
    return !!col && col.kind === 'string' && acceptsIgnoreCase(c.op);
  }
  function definition(withMeta) {
    var d = {};
    if (withMeta) {
      var name = $('def-name').value.trim(), desc = $('def-description').value.trim();
      if (name) d.name = name;
      if (desc) d.description = desc;
    }
    ['include', 'exclude'].forEach(function (k) {
      if (!M[k].length) return;
      d[k] = M[k].map(function (cl) { return { match: cl.match, conditions: cl.conditions.map(condToJson) }; });
    });
    return d;
  }

  function condFromJson(j) {
    if (j == null || typeof j !== 'object') return { kind: 'sql', sql: String(j) };
    if (j.sql != null) return { kind: 'sql', sql: String(j.sql) };
    var op = canonicalOp(j.op);
    if (j.events != null) {
      return { kind: 'events', events: j.events, aggregate: j.aggregate || 'count', column: j.column || '',
        within_last: j.within_last || '', op: op || 'gte', value: j.value != null ? String(j.value) : '' };
    }
    if (op === 'in_group' || op === 'not_in_group') return { kind: 'group', op: op, value: String(j.value != null ? j.value : (j.values || [])[0] || '') };
    var vals = j.values != null ? (Array.isArray(j.values) ? j.values : [j.values]) : (j.value != null ? [j.value] : []);
    return {
      kind: 'attr', attribute: j.attribute || '', op: op, ignore_case: !!j.ignore_case,
      value: vals.length ? String(vals[0]) : '', listText: joinList(vals),
      lo: vals.length > 0 ? String(vals[0]) : '', hi: vals.length > 1 ? String(vals[1]) : ''
    };
  }
  function loadDefinition(d) {
    if (!d || typeof d !== 'object' || Array.isArray(d)) throw new Error('a definition is a JSON object');
    M.include = []; M.exclude = [];
    lastGood = null;
    ['include', 'exclude'].forEach(function (k) {
      var cls = d[k] || [];
      if (!Array.isArray(cls)) cls = [cls];
      M[k] = cls.map(function (cl) {
        return { match: cl.match === 'any' ? 'any' : 'all', conditions: (cl.conditions || []).map(condFromJson) };
      });
    });
    if (d.name) $('def-name').value = d.name;
    if (d.description) $('def-description').value = d.description;
  }

  // --- rendering the form
  function options(list, selected, placeholder) {
    var h = placeholder ? '<option value="">' + esc(placeholder) + '</option>' : '', found = false;
    list.forEach(function (o) {
      var v = typeof o === 'string' ? o : o.value, l = typeof o === 'string' ? o : o.label;
      if (v === selected) found = true;
      h += '<option value="' + esc(v) + '"' + (v === selected ? ' selected' : '') + '>' + esc(l) + '</option>';
    });
    if (!found && selected) h += '<option value="' + esc(selected) + '" selected>' + esc(selected) + ' (unknown)</option>';
    return h;
  }
  function inputType(kind, op) {
    if (op === 'within_last' || op === 'not_within_last') return { type: 'text', ph: 'e.g. 30d, 12h, 2w' };
    if (kind === 'number') return { type: 'text', ph: 'number', mode: 'decimal' };
    if (kind === 'date') return { type: 'date', ph: 'YYYY-MM-DD' };
    if (kind === 'timestamp') return { type: 'text', ph: '2024-01-31 or RFC 3339' };
    return { type: 'text', ph: 'value' };
  }

  function condHtml(c, path) {
    var h = '<div class="cond" data-path="' + path + '" data-testid="condition">';
    var f = ' data-f="';
    if (c.kind === 'attr') {
      var cols = (S.schema.columns || []).map(function (col) { return { value: col.name, label: col.name + ' · ' + col.kind }; });
      var col = column(c.attribute);
      var ops = col ? opsFor(col.kind) : allOps();
      h += '<select' + f + 'attribute" aria-label="Attribute" data-testid="cond-attribute">' + options(cols, c.attribute, 'attribute…') + '</select>';
      h += '<select' + f + 'op" aria-label="Operator" data-testid="cond-op">' +
        options(ops.map(function (o) { return { value: o.op, label: o.label || o.op }; }), c.op, 'operator…') + '</select>';
      var ar = arityOf(c), it = inputType(col ? col.kind : 'string', c.op);
      var dl = col && col.examples && col.examples.length ? ' list="ex-' + esc(col.name) + '"' : '';
      var inp = function (field, val, label) {
        return '<input' + f + field + '" type="' + it.type + '" placeholder="' + esc(it.ph) + '"' +
          (it.mode ? ' inputmode="' + it.mode + '"' : '') + ' value="' + esc(val) + '" aria-label="' + label + '"' + dl + ' data-testid="cond-value">';
      };
      if (ar === 'one') {
        if (col && col.kind === 'boolean' && (c.op === 'equals' || c.op === 'not_equals')) {
          h += '<select' + f + 'value" aria-label="Value" data-testid="cond-value">' + options(['true', 'false'], c.value || 'true') + '</select>';
        } else h += inp('value', c.value || '', 'Value');
      } else if (ar === 'list') {
        h += '<input' + f + 'listText" class="list" placeholder="comma-separated, e.g. ' + esc(((col && col.examples) || ['a', 'b']).slice(0, 2).join(', ')) +
          '" value="' + esc(c.listText || '') + '" aria-label="Values, comma-separated"' + dl + ' data-testid="cond-values">';
        var chips = splitList(c.listText);
        h += '<span class="vals" aria-hidden="true">' + chips.length + ' value' + (chips.length === 1 ? '' : 's') + '</span>';
      } else if (ar === 'two') {
        h += inp('lo', c.lo || '', 'From (inclusive)') + '<span class="and">and</span>' + inp('hi', c.hi || '', 'To (inclusive)');
      }
      if (showsIgnoreCase(c)) {
        h += '<label class="ic"><input type="checkbox"' + f + 'ignore_case"' + (c.ignore_case ? ' checked' : '') + ' data-testid="cond-ignore-case"> ignore case</label>';
      }
    } else if (c.kind === 'group') {
      h += '<span class="kind">customer</span><select' + f + 'op" aria-label="Group operator">' +
        options(groupOps().map(function (o) { return { value: o.op, label: o.label }; }), c.op) + '</select>';
      h += '<select' + f + 'value" aria-label="Group" data-testid="cond-group">' +
        options(S.rows.map(function (r) { return { value: r.id, label: r.id + (r.name && r.name !== r.id ? ' — ' + r.name : '') }; }), c.value, 'group…') + '</select>';
    } else if (c.kind === 'sql') {
      h += '<span class="kind">SQL</span><input' + f + 'sql" class="sql" placeholder="lower(email) LIKE \'%@example.com\'" value="' + esc(c.sql) + '" aria-label="SQL expression" data-testid="cond-sql">';
    } else if (c.kind === 'events') {
      var evOps = opsFor('number');
      h += '<span class="kind">events</span><select' + f + 'events" aria-label="Event table">' + options(S.schema.events || [], c.events) + '</select>';
      h += '<select' + f + 'aggregate" aria-label="Aggregate">' + options(aggregates(), c.aggregate) + '</select>';
      if (c.aggregate !== 'count') h += '<span class="and">of</span><input' + f + 'column" class="short" placeholder="column" value="' + esc(c.column) + '" aria-label="Event column">';
      h += '<span class="and">in the last</span><input' + f + 'within_last" class="tiny" placeholder="90d" value="' + esc(c.within_last) + '" aria-label="Within the last (empty: all time)" title="e.g. 90d, 12h, 2w; empty: all time">';
      h += '<select' + f + 'op" aria-label="Operator">' + options(evOps.map(function (o) { return { value: o.op, label: o.label || o.op }; }), c.op) + '</select>';
      h += '<input' + f + 'value" class="tiny" placeholder="value" value="' + esc(c.value) + '" aria-label="Value">';
    }
    h += '<button type="button" class="icon" data-remove-cond aria-label="Remove condition" title="Remove condition">×</button>';
    h += '<div class="problems" data-problems-for="' + path + '"></div></div>';
    return h;
  }

  function clauseHtml(kind, i, cl) {
    var path = kind + '[' + i + ']';
    var h = '<fieldset class="clause ' + kind + '" data-path="' + path + '" data-testid="clause">' +
      '<legend>' + (kind === 'include' ? 'Include' : 'Exclude') + ' clause ' + (i + 1) + '</legend>' +
      '<div class="clause-head">Customers matching <select data-clause-match aria-label="Match">' +
      options([{ value: 'all', label: 'all' }, { value: 'any', label: 'any' }], cl.match) + '</select> of:' +
      '<span class="spacer"></span><span class="clause-count" data-clause-count="' + path + '" data-testid="clause-count"></span>' +
      '<button type="button" class="icon" data-remove-clause aria-label="Remove clause" title="Remove clause">×</button></div>';
    if (!cl.conditions.length) {
      h += '<p class="muted small empty-clause">' + (cl.match === 'all' ? 'No conditions: matches every customer.' : 'No conditions: matches nobody.') + '</p>';
    }
    cl.conditions.forEach(function (c, j) { h += condHtml(c, path + '.conditions[' + j + ']'); });
    h += '<div class="problems" data-problems-for="' + path + '"></div>';
    h += '<div class="add-row"><button type="button" class="add" data-add-cond="attr">+ Attribute</button>' +
      '<button type="button" class="add" data-add-cond="group">+ In group</button>' +
      ((S.schema.events || []).length ? '<button type="button" class="add" data-add-cond="events">+ Purchase history</button>' : '') +
      (S.dash && S.dash.sizing && S.dash.sizing.allow_sql ? '<button type="button" class="add" data-add-cond="sql">+ SQL</button>' : '') +
      '</div></fieldset>';
    return h;
  }

  function renderForm() {
    ['include', 'exclude'].forEach(function (k) {
      $(k + '-clauses').innerHTML = M[k].map(function (cl, i) { return clauseHtml(k, i, cl); }).join('');
    });
    var dl = '';
    (S.schema.columns || []).forEach(function (col) {
      if (col.examples && col.examples.length) {
        dl += '<datalist id="ex-' + esc(col.name) + '">' + col.examples.map(function (e) { return '<option value="' + esc(e) + '">'; }).join('') + '</datalist>';
      }
    });
    var holder = $('example-lists');
    if (!holder) { holder = document.createElement('div'); holder.id = 'example-lists'; document.body.appendChild(holder); }
    holder.innerHTML = dl;
    changed();
  }

  function locate(el) {
    var condEl = el.closest('.cond'), clauseEl = el.closest('.clause');
    if (!clauseEl) return null;
    var m = /^(include|exclude)\[(\d+)\]$/.exec(clauseEl.getAttribute('data-path'));
    var loc = { kind: m[1], ci: +m[2], clause: M[m[1]][+m[2]] };
    if (condEl) {
      var n = /conditions\[(\d+)\]$/.exec(condEl.getAttribute('data-path'));
      loc.j = +n[1];
      loc.cond = loc.clause.conditions[loc.j];
    }
    return loc;
  }

  function onFormInput(ev) {
    var el = ev.target;
    var loc = locate(el);
    if (!loc) { if (el.id === 'def-name' || el.id === 'def-description' || el.id === 'def-id') showJson(); return; }
    if (el.hasAttribute('data-clause-match')) {
      if (loc.clause.match === el.value) return;
      loc.clause.match = el.value;
      renderForm();
      return;
    }
    var field = el.getAttribute('data-f');
    if (!field || !loc.cond) return;
    var c = loc.cond;
    // 'input' does the work; a 'change' only matters if it brings a value not seen yet
    if (ev.type === 'change' && (field === 'ignore_case' ? c.ignore_case === el.checked : c[field] === el.value)) return;
    var structural = false;
    if (field === 'ignore_case') c.ignore_case = el.checked;
    else c[field] = el.value;
    if (c.kind === 'attr' && field === 'attribute') {
      var col = column(c.attribute);
      var ops = col ? opsFor(col.kind) : [];
      if (!ops.some(function (o) { return o.op === c.op; })) c.op = (ops[0] || {}).op || '';
      structural = true;
    } else if (field === 'op' || field === 'aggregate') {
      if (c.kind === 'attr') carryValues(c);
      structural = true;
    } else if (field === 'listText') {
      var cnt = splitList(el.value).length;
      var span = el.parentNode.querySelector('.vals');
      if (span) span.textContent = cnt + ' value' + (cnt === 1 ? '' : 's');
    }
    if (structural) renderForm();
    else changed();
  }
  function carryValues(c) {
    // keep what was typed when the arity changes
    var ar = arityOf(c);
    var first = c.value || splitList(c.listText)[0] || c.lo || '';
    if (ar === 'one' && !c.value) c.value = first;
    if (ar === 'list' && !c.listText) c.listText = first;
    if (ar === 'two' && !c.lo) c.lo = first;
  }

  function onFormClick(ev) {
    var b = ev.target.closest('button');
    if (!b) return;
    if (b.hasAttribute('data-add-clause')) {
      var k = b.getAttribute('data-add-clause');
      M[k].push({ match: k === 'exclude' ? 'any' : 'all', conditions: [newAttrCond()] });
      renderForm();
      return;
    }
    var loc = locate(b);
    if (!loc) return;
    if (b.hasAttribute('data-add-cond')) loc.clause.conditions.push(newCond(b.getAttribute('data-add-cond')));
    else if (b.hasAttribute('data-remove-cond')) loc.clause.conditions.splice(loc.j, 1);
    else if (b.hasAttribute('data-remove-clause')) M[loc.kind].splice(loc.ci, 1);
    else return;
    renderForm();
    var fs = document.querySelector('.clause[data-path="' + loc.kind + '[' + loc.ci + ']"] .cond:last-of-type select, .clause[data-path="' + loc.kind + '[' + loc.ci + ']"] .cond:last-of-type input');
    if (fs && b.hasAttribute('data-add-cond')) fs.focus();
  }

  // --- the JSON pane and the sizing requests
  function showJson() {
    $('def-json').textContent = JSON.stringify(definition(true), null, 2);
  }
  var sizeSoon = debounce(size, 300), writtenHash = null;
  function changed() {
    showJson();
    try {
      history.replaceState(null, '', '#build=' + encodeURIComponent(JSON.stringify(definition(false))));
      writtenHash = location.hash;
    } catch (e) { /* ignore */ }
    setLive(null, 'pending');
    sizeSoon();
  }

  function localProblems() {
    // Incomplete rows are not sent: the server would only say what the user can see.
    var out = [];
    ['include', 'exclude'].forEach(function (k) {
      M[k].forEach(function (cl, i) {
        cl.conditions.forEach(function (c, j) {
          var p = k + '[' + i + '].conditions[' + j + ']', msg = null;
          if (c.kind === 'attr') {
            var ar = arityOf(c);
            if (!c.attribute) msg = 'pick an attribute';
            else if (!c.op) msg = 'pick an operator';
            else if (ar === 'one' && String(c.value || '').trim() === '') msg = 'enter a value';
            else if (ar === 'list' && !splitList(c.listText).length) msg = 'enter one or more values, separated by commas';
            else if (ar === 'two' && (String(c.lo || '').trim() === '' || String(c.hi || '').trim() === '')) msg = 'enter both ends of the range';
          } else if (c.kind === 'group' && !c.value) msg = 'pick a group';
          else if (c.kind === 'sql' && !c.sql.trim()) msg = 'enter a SQL expression';
          else if (c.kind === 'events' && String(c.value).trim() === '') msg = 'enter a value';
          if (msg) out.push({ severity: 'incomplete', path: p, message: msg });
        });
      });
    });
    return out;
  }

  var sizeSeq = 0, sizeCtl = null, lastGood = null;
  function size() {
    var local = localProblems();
    if (local.length) {
      showProblems(local);
      setLive(lastGood, 'incomplete', 'Complete the highlighted condition' + (local.length > 1 ? 's' : '') + ' to size the group.');
      return;
    }
    var seq = ++sizeSeq;
    if (sizeCtl && sizeCtl.abort) sizeCtl.abort();
    sizeCtl = window.AbortController ? new AbortController() : null;
    setLive(lastGood, 'loading', 'Sizing…');
    var started = performance.now();
    api('POST', '/v1/size', definition(false), { signal: sizeCtl && sizeCtl.signal }).then(function (res) {
      if (seq !== sizeSeq) return;
      var b = res.body || {};
      if (res.status === 200) {
        lastGood = b;
        showProblems(b.problems || []);
        setLive(b, 'ok', (b.elapsed_ms != null ? 'evaluated in ' + num(b.elapsed_ms) + ' ms' : 'evaluated in ' + Math.round(performance.now() - started) + ' ms'));
      } else if (res.status === 422) {
        showProblems(b.problems || [{ severity: 'error', path: '', message: b.error || 'definition has problems' }]);
        var errs = (b.problems || []).filter(function (p) { return p.severity !== 'warning'; }).length;
        setLive(lastGood, 'error', errs ? errs + ' problem' + (errs > 1 ? 's' : '') + ' to fix' : (b.error || 'definition has problems'));
      } else if (res.status === 429) {
        setLive(lastGood, 'loading', 'Server busy; retrying…');
        setTimeout(function () { if (seq === sizeSeq) size(); }, 1000);
      } else if (res.status === 404 || res.status === 400 && /not enabled/i.test(b.error || '')) {
        sizingDisabled(b.error || 'Live sizing is not enabled on this server.');
      } else {
        showProblems([]);
        setLive(lastGood, 'error', (res.status === 408 ? 'Timed out: ' : 'Error: ') + (b.error || 'HTTP ' + res.status));
      }
    }).catch(function (e) {
      if (e && e.name === 'AbortError') return;
      if (seq === sizeSeq) setLive(lastGood, 'error', 'Request failed: ' + (e && e.message));
    });
  }

  function setLive(r, state, msg) {
    var live = $('live-count'), share = $('live-share'), bar = $('live-bar');
    live.parentNode.setAttribute('data-state', state);
    root.setAttribute('data-size-state', state);
    if (state === 'pending') return; // keep the last numbers while typing
    if (r) {
      live.textContent = num(r.members);
      live.setAttribute('data-members', r.members);
      var sh = r.customers ? r.members / r.customers : null;
      share.textContent = pct(sh) + ' of ' + num(r.customers) + ' customers';
      bar.style.width = Math.min(100, (sh || 0) * 100).toFixed(2) + '%';
    } else {
      live.textContent = '—'; live.removeAttribute('data-members'); share.textContent = ''; bar.style.width = '0';
    }
    $('live-status').textContent = msg || '';
    var counts = document.querySelectorAll('[data-clause-count]');
    for (var i = 0; i < counts.length; i++) {
      var m = /^(include|exclude)\[(\d+)\]$/.exec(counts[i].getAttribute('data-clause-count'));
      var v = state === 'ok' && r && r.clauses && r.clauses[m[1]] ? r.clauses[m[1]][+m[2]] : null;
      counts[i].textContent = v == null ? '' : num(v) + ' customers';
    }
  }

  function showProblems(list) {
    var boxes = document.querySelectorAll('#builder [data-problems-for]');
    var byPath = Object.create(null);
    for (var i = 0; i < boxes.length; i++) {
      boxes[i].innerHTML = '';
      byPath[boxes[i].getAttribute('data-problems-for')] = boxes[i];
    }
    var conds = document.querySelectorAll('#builder .cond, #builder .clause');
    for (i = 0; i < conds.length; i++) conds[i].classList.remove('has-error', 'has-warning', 'has-incomplete');
    var general = $('general-problems');
    general.innerHTML = '';
    list.forEach(function (p) {
      // Longest known prefix of the path: include[0].conditions[1].where[0] → the condition row.
      var path = p.path || '', box = null;
      while (path && !(box = byPath[path])) {
        var cut = path.search(/(\.[^.\[]+)?\[\d+\]$|\.[^.\[]+$/);
        if (cut <= 0) { path = ''; break; }
        path = path.slice(0, cut);
      }
      box = box || general;
      var sev = p.severity === 'warning' ? 'warning' : p.severity === 'incomplete' ? 'incomplete' : 'error';
      var where = box === general && p.path ? ' <code>' + esc(p.path) + '</code>' : '';
      var lc = p.line != null ? ' <span class="muted">(line ' + p.line + (p.column != null ? ':' + p.column : '') + ')</span>' : '';
      box.insertAdjacentHTML('beforeend', '<div class="problem-msg ' + sev + '" role="' + (sev === 'error' ? 'alert' : 'status') +
        '" data-testid="problem" data-severity="' + sev + '" data-path="' + esc(p.path || '') + '">' +
        '<span class="sev">' + (sev === 'incomplete' ? 'incomplete' : sev) + '</span> ' + esc(p.message) + where + lc +
        (p.hint ? ' <span class="hint">— ' + esc(p.hint) + '</span>' : '') + '</div>');
      var row = box.closest('.cond') || box.closest('.clause');
      if (row) row.classList.add('has-' + sev);
    });
  }

  function sizingDisabled(reason) {
    $('builder').hidden = true;
    var box = $('sizing-disabled');
    box.hidden = false;
    reason = String(reason || 'start cohort serve with --customers <url> to enable it.');
    box.innerHTML = '<strong>Live sizing is not available.</strong> ' + esc(reason.charAt(0).toUpperCase() + reason.slice(1));
  }

  var sizingInit = null;
  function initSizing(arg) {
    if (!S.dash) return; // route() runs again once the dashboard is loaded
    var sizing = S.dash.sizing || {};
    if (!sizing.enabled) { sizingDisabled(sizing.reason); return; }
    if (!sizingInit) {
      sizingInit = api('GET', '/v1/schema').then(function (res) {
        if (res.status !== 200) {
          sizingDisabled((res.body && res.body.error) || 'the customers schema is not available (HTTP ' + res.status + ')');
          return false;
        }
        S.schema = res.body;
        S.schema.columns = S.schema.columns || [];
        S.schema.events = S.schema.events || [];
        $('builder').hidden = false;
        $('sizing-disabled').hidden = true;
        return true;
      }).catch(function (e) { sizingDisabled('could not load the schema: ' + e.message); return false; });
    }
    sizingInit.then(function (ok) {
      if (!ok) return;
      var fresh = !M.include.length && !M.exclude.length;
      if (arg) {
        try { loadDefinition(JSON.parse(arg)); } catch (e) { $('import-error').textContent = 'Could not load the definition from the link: ' + e.message; }
      } else if (fresh) {
        M.include = [{ match: 'all', conditions: [newAttrCond()] }];
      }
      if (arg || fresh || !$('include-clauses').children.length) renderForm();
    });
  }

  function copyJson() {
    var text = $('def-json').textContent, btn = $('copy-json');
    function ok() { btn.textContent = 'Copied'; setTimeout(function () { btn.textContent = 'Copy'; }, 1500); }
    if (navigator.clipboard && navigator.clipboard.writeText) {
      navigator.clipboard.writeText(text).then(ok, fallback);
    } else fallback();
    function fallback() {
      var ta = document.createElement('textarea');
      ta.value = text; ta.setAttribute('readonly', ''); ta.className = 'offscreen';
      document.body.appendChild(ta); ta.select();
      try { document.execCommand('copy'); ok(); } catch (e) { /* ignore */ }
      document.body.removeChild(ta);
    }
  }
  function downloadJson() {
    var id = $('def-id').value.trim() || 'new_group';
    var blob = new Blob([$('def-json').textContent + '\n'], { type: 'application/json' });
    var a = document.createElement('a');
    a.href = URL.createObjectURL(blob);
    a.download = id + '.json';
    document.body.appendChild(a); a.click(); document.body.removeChild(a);
    setTimeout(function () { URL.revokeObjectURL(a.href); }, 1000);
  }

  // ---------------------------------------------------------------- boot
  var dashRequest = null; // started as soon as the script runs
  function loadDashboard(initial) {
    var req = initial && dashRequest ? dashRequest : api('GET', '/v1/dashboard');
    return req.then(function (res) {
      if (res.status !== 200) throw new Error((res.body && res.body.error) || 'HTTP ' + res.status);
      var d = res.body;
      var changedRun = !S.dash || S.dash.run_id !== d.run_id || S.dash.loaded_at !== d.loaded_at;
      if (!changedRun && !initial) return;
      var t = performance.now();
      S.dash = d;
      renderHeader(d);
      prepare(d);
      var tableMs = renderTable(initial ? function () {
        // first paint of the table (after the frame that showed it)
        root.setAttribute('data-first-paint-ms', performance.now().toFixed(1));
        afterPaint(function () { root.setAttribute('data-all-rows-ms', performance.now().toFixed(1)); });
      } : null);
      setSelected(S.selected);
      $('load-error').hidden = true;
      if (initial) {
        // timings, for the browser test: from navigation start, and from the data's arrival
        var done = performance.now();
        root.setAttribute('data-script-start-ms', T0.toFixed(1));
        root.setAttribute('data-data-ms', t.toFixed(1));
        root.setAttribute('data-first-render-ms', done.toFixed(1));
        root.setAttribute('data-render-ms', (done - t).toFixed(1));
        root.setAttribute('data-table-ms', tableMs.toFixed(1));
        route();
      }
      root.setAttribute('data-run-id', d.run_id || '');
      root.setAttribute('data-loaded', 'true');
    }).catch(function (e) {
      var box = $('load-error');
      box.textContent = 'Could not load the dashboard: ' + e.message;
      box.hidden = false;
      root.setAttribute('data-loaded', 'error');
    });
  }

  function boot() {
    $('groups-table').querySelector('thead').addEventListener('click', onSortClick);
    var filterSoon = debounce(function () { renderTable(); }, 80);
    $('group-filter').addEventListener('input', function (e) { S.filter = e.target.value; filterSoon(); });
    $('groups-body').addEventListener('change', function (e) {
      var id = e.target.getAttribute('data-sel');
      if (id == null) return;
      var next = S.selected.filter(function (x) { return x !== id; });
      if (e.target.checked) next.push(id);
      setSelected(next);
    });
    $('compare-selected').addEventListener('click', function () { location.hash = '#overlap'; });
    $('clear-selection').addEventListener('click', function () { setSelected([]); });
    $('overlap-clear').addEventListener('click', function () { setSelected([]); });
    function addPicked() {
      var v = $('overlap-add').value.trim();
      if (!v) return;
      if (!S.byId[v]) { $('overlap-status').textContent = 'No group with id ' + v + '.'; return; }
      $('overlap-add').value = '';
      setSelected(S.selected.concat([v]));
    }
    $('overlap-add-btn').addEventListener('click', addPicked);
    $('overlap-add').addEventListener('keydown', function (e) { if (e.key === 'Enter') { e.preventDefault(); addPicked(); } });
    $('overlap-chips').addEventListener('click', function (e) {
      var id = e.target.getAttribute && e.target.getAttribute('data-unpick');
      if (id != null) setSelected(S.selected.filter(function (x) { return x !== id; }));
    });
    var form = $('builder-form');
    form.addEventListener('input', onFormInput);
    form.addEventListener('change', onFormInput);
    form.addEventListener('click', onFormClick);
    form.addEventListener('submit', function (e) { e.preventDefault(); });
    $('copy-json').addEventListener('click', copyJson);
    $('download-json').addEventListener('click', downloadJson);
    $('import-btn').addEventListener('click', function () {
      $('import-error').textContent = '';
      try { loadDefinition(JSON.parse($('import-json').value)); renderForm(); }
      catch (e) { $('import-error').textContent = 'Not a definition: ' + e.message; }
    });
    window.addEventListener('hashchange', function () {
      // the builder keeps its own state in the hash; only a hash it did not write is loaded
      if (location.hash === writtenHash) return;
      route();
    });
    route();
    loadDashboard(true);
    // hot reload: the server swaps runs in; look for a new one now and then
    setInterval(function () { if (!document.hidden) loadDashboard(false); }, 60000);
  }

  dashRequest = api('GET', '/v1/dashboard');
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', boot);
  else boot();
})();
