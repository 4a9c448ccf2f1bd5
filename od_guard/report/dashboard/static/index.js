// The od_guard dashboard: an ES module that TensorBoard loads into the
// plugin's iframe and calls `render()` on.
//
// Everything shown comes from event files: run names, variable names, paths
// and config values are hostile input. The DOM is built only with
// createElement, text nodes and a short list of attributes (`el` below); no
// HTML string is ever parsed, no URL is taken from data, and every request
// goes to this plugin's own fixed routes.

const ROW_HEIGHT = 22;
const OVERSCAN = 12;
const AUTO_EXPAND_LIMIT = 2000;
const DEFAULT_DEPTH = 2;
const SEVERITY_ORDER = {error: 0, warning: 1, info: 2};
const FATE_LABELS = {
  restored: 'restored',
  missing: 'missing',
  shape_mismatch: 'shape mismatch',
  dtype_mismatch: 'dtype mismatch',
  unused: 'unused in checkpoint',
  not_requested: 'not requested',
  absent: 'absent',
};
const FATE_MARKS = {
  restored: '✓', missing: '✗', shape_mismatch: '≠', dtype_mismatch: '≠', unused: '○', not_requested: '–',
};
const ALLOWED_ATTRIBUTES = new Set([
  'title', 'type', 'placeholder', 'value', 'role', 'colspan', 'aria-label',
  'spellcheck', 'autocomplete',
]);

// DOM helpers: the only way this module creates elements.

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'class') node.className = value;
    else if (key === 'data') Object.assign(node.dataset, value);
    else if (key === 'style') {
      for (const [prop, v] of Object.entries(value)) node.style.setProperty(prop, v);
    } else if (key.startsWith('on')) node.addEventListener(key.slice(2), value);
    else if (key === 'checked' || key === 'selected' || key === 'disabled') node[key] = true;
    else if (ALLOWED_ATTRIBUTES.has(key)) node.setAttribute(key, String(value));
    else throw new Error(`od_guard dashboard: attribute ${key} is not allowed`);
  }
  appendChildren(node, children);
  return node;
}

function appendChildren(node, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

async function getJSON(route, params) {
  const query = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== null && v !== undefined) query.set(k, String(v));
  }
  const response = await fetch(`./${route}?${query}`);
  if (!response.ok) {
    const text = await response.text();
    throw new Error(`${route}: HTTP ${response.status}: ${text.slice(0, 500)}`);
  }
  return response.json();
}

// Formatting.

function formatCount(n) {
  if (n === null || n === undefined || n < 0) return '—';
  if (n >= 1e9) return `${(n / 1e9).toFixed(1)}B`;
  if (n >= 1e6) return `${(n / 1e6).toFixed(1)}M`;
  if (n >= 1e4) return `${(n / 1e3).toFixed(1)}k`;
  return n.toLocaleString('en-US');
}

function percent(fraction) {
  if (fraction === null || fraction === undefined) return '—';
  return `${(100 * fraction).toFixed(1)}%`;
}

function badge(decision, big) {
  const known = ['pass', 'warn', 'fail'].includes(decision);
  return el(
    'span',
    {class: `badge ${known ? decision : 'none'}${big ? ' big' : ''}`, data: {role: 'badge'}},
    known ? decision.toUpperCase() : 'N/A',
  );
}

function basename(path) {
  const s = String(path || '');
  const trimmed = s.replace(/\/+$/, '');
  return trimmed.slice(trimmed.lastIndexOf('/') + 1) || s;
}

// One collator: String.localeCompare builds one per call, far too slow for 50,000 names.
const naturalCompare = new Intl.Collator('en', {numeric: true}).compare;

function kvTable(rows) {
  return el(
    'table',
    {class: 'kv'},
    el('tbody', null, rows.filter(([, v]) => v !== null && v !== undefined && v !== '').map(([k, v]) =>
      el('tr', null, el('td', null, k), el('td', {class: 'mono'}, typeof v === 'object' ? JSON.stringify(v) : String(v))))),
  );
}

// The variable table: a tree of scopes over columnar rows, virtualised.

class VariableTree {
  constructor(table) {
    this.table = table;
    this.fateNames = table.fates;
    this.root = {name: '', id: '', depth: -1, nodes: [], nodeMap: new Map(), leaves: []};
    this.leafName = new Array(table.rows);
    this.leafDepth = new Array(table.rows);
    const paths = table.path;
    for (let i = 0; i < table.rows; i++) {
      const parts = paths[i].split('/');
      let node = this.root;
      for (let j = 0; j < parts.length - 1; j++) {
        let child = node.nodeMap.get(parts[j]);
        if (!child) {
          child = {
            name: parts[j], id: node.id === '' && node.depth < 0 ? parts[j] : `${node.id}/${parts[j]}`,
            depth: node.depth + 1, nodes: [], nodeMap: new Map(), leaves: [],
          };
          node.nodeMap.set(parts[j], child);
          node.nodes.push(child);
        }
        node = child;
      }
      node.leaves.push(i);
      this.leafName[i] = parts[parts.length - 1];
      this.leafDepth[i] = node.depth + 1;
    }
    this.match = new Uint8Array(table.rows);
  }

  // Marks the leaves that pass the filter; counts per node. Returns the number matched.
  applyFilter(test, fates) {
    const fate = this.table.fate;
    const params = this.table.params;
    const paths = this.table.path;
    let matched = 0;
    for (let i = 0; i < this.table.rows; i++) {
      const ok = fates.has(this.fateNames[fate[i]]) && (!test || test(paths[i]));
      this.match[i] = ok ? 1 : 0;
      if (ok) matched++;
    }
    const count = (node) => {
      const fateCounts = new Array(this.fateNames.length).fill(0);
      let total = 0;
      let paramSum = 0;
      let known = false;  // unused values have no shape in the report
      for (const i of node.leaves) {
        if (!this.match[i]) continue;
        total++;
        fateCounts[fate[i]]++;
        if (params[i] >= 0) {
          paramSum += params[i];
          known = true;
        }
      }
      for (const child of node.nodes) {
        count(child);
        total += child.total;
        paramSum += child.params;
        known = known || child.paramsKnown;
        for (let f = 0; f < fateCounts.length; f++) fateCounts[f] += child.fateCounts[f];
      }
      node.total = total;
      node.params = paramSum;
      node.paramsKnown = known;
      node.fateCounts = fateCounts;
    };
    count(this.root);
    return matched;
  }

  // Children in natural order ('layer_2' before 'layer_10'), sorted the first
  // time a node is shown: most of a 50,000-variable tree is never opened.
  sortNode(node) {
    if (node.sorted) return;
    node.nodes.sort((a, b) => naturalCompare(a.name, b.name));
    node.leaves.sort((a, b) => naturalCompare(this.leafName[a], this.leafName[b]));
    node.sorted = true;
  }

  // Depth first over the scopes with a match below: visit(scope) says whether
  // to descend; leaves(scope) runs after its child scopes.
  walkScopes(visit, leaves) {
    const walk = (node) => {
      this.sortNode(node);
      for (const child of node.nodes) {
        if (child.total && visit(child)) walk(child);
      }
      if (leaves) leaves(node);
    };
    walk(this.root);
  }

  // Visible rows: scopes, then their matching variables.
  flatten(expanded) {
    const rows = [];
    this.walkScopes(
      (child) => rows.push({node: child}) && expanded.has(child.id),
      (node) => {
        for (const i of node.leaves) if (this.match[i]) rows.push({leaf: i});
      });
    return rows;
  }

  nodeIds(maxDepth) {
    const ids = [];
    this.walkScopes((child) => {
      if (maxDepth === undefined || child.depth < maxDepth) ids.push(child.id);
      return true;
    });
    return ids;
  }
}

class VariableTable {
  constructor(table, onRendered) {
    this.table = table;
    this.tree = new VariableTree(table);
    performance.mark('od_guard:tree-built');
    this.onRendered = onRendered;
    this.fates = new Set(table.fates);
    this.filterText = '';
    this.regex = false;
    this.rows = [];
    this.frame = 0;
    this.expanded = new Set();
    this.tree.applyFilter(null, this.fates);
    for (const id of this.tree.nodeIds(DEFAULT_DEPTH)) this.expanded.add(id);
    this.build();  // rows are rendered by refresh(), once the table is in the document
  }

  build() {
    const t = this.table;
    this.input = el('input', {
      type: 'search', placeholder: 'filter variables (text or regex)', spellcheck: 'false',
      autocomplete: 'off', data: {role: 'var-filter'}, oninput: () => this.onFilter(),
    });
    this.regexBox = el('input', {type: 'checkbox', data: {role: 'var-regex'}, onchange: () => this.onFilter()});
    this.chips = t.fates.map((fate) => el(
      'button',
      {class: 'chip on', data: {role: 'fate-chip', fate}, onclick: (e) => this.toggleFate(fate, e.currentTarget)},
      FATE_LABELS[fate] || fate,
      el('span', {class: 'n'}, formatCount(t.counts[fate] || 0)),
    ));
    this.status = el('div', {class: 'status', data: {role: 'var-status'}});
    this.rowsBox = el('div', {class: 'vt-rows'});
    this.spacer = el('div', {class: 'vt-spacer'});
    this.scroll = el('div', {class: 'vt-scroll', data: {role: 'var-scroll'}, onscroll: () => this.schedule()},
      this.spacer, this.rowsBox);
    this.element = el(
      'div',
      {data: {role: 'var-table'}},
      el('div', {class: 'toolbar'},
        this.input,
        el('label', null, this.regexBox, ' regex'),
        this.chips,
        el('button', {class: 'chip', data: {role: 'expand-all'}, onclick: () => this.expandAll(true)}, 'expand all'),
        el('button', {class: 'chip', data: {role: 'collapse-all'}, onclick: () => this.expandAll(false)}, 'collapse all'),
      ),
      this.status,
      el('div', {class: 'vt-head'},
        el('span', null, 'variable (scope tree)'), el('span', null, 'fate'),
        el('span', null, 'shape (model)'), el('span', null, 'checkpoint'),
        el('span', null, 'dtype'), el('span', null, 'component'),
        el('span', {class: 'num'}, 'params')),
      this.scroll,
    );
  }

  toggleFate(fate, chip) {
    if (this.fates.has(fate)) this.fates.delete(fate);
    else this.fates.add(fate);
    chip.classList.toggle('on', this.fates.has(fate));
    this.onFilter();
  }

  tester() {
    const text = this.input.value.trim();
    this.input.classList.remove('invalid');
    this.input.removeAttribute('title');
    if (!text) return null;
    if (this.regexBox.checked) {
      try {
        const re = new RegExp(text, 'i');
        return (s) => re.test(s);
      } catch (e) {
        this.input.classList.add('invalid');
        this.input.setAttribute('title', String(e.message));
        return () => false;
      }
    }
    const needle = text.toLowerCase();
    return (s) => s.toLowerCase().includes(needle);
  }

  onFilter() {
    const test = this.tester();
    const matched = this.tree.applyFilter(test, this.fates);
    const filtering = test !== null || this.fates.size !== this.table.fates.length;
    if (filtering && matched <= AUTO_EXPAND_LIMIT) {
      for (const id of this.tree.nodeIds()) this.expanded.add(id);
    }
    this.refresh();
  }

  expandAll(open) {
    if (open) for (const id of this.tree.nodeIds()) this.expanded.add(id);
    else this.expanded.clear();
    this.refresh();
  }

  refresh() {
    this.rows = this.tree.flatten(this.expanded);
    const total = this.table.rows;
    const matched = this.tree.root.total;
    const unusedOther = this.table.unused_other
      ? ` · ${formatCount(this.table.unused_other)} optimizer / bookkeeping values unused (not listed)` : '';
    this.status.textContent =
      `${matched.toLocaleString('en-US')} of ${total.toLocaleString('en-US')} variables match` +
      ` · ${formatCount(this.tree.root.params)} params · ${this.rows.length.toLocaleString('en-US')} rows${unusedOther}`;
    this.status.dataset.matched = String(matched);
    this.spacer.style.setProperty('height', `${this.rows.length * ROW_HEIGHT}px`);
    this.renderWindow();
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.renderWindow();
    });
  }

  renderWindow() {
    const height = this.scroll.clientHeight || 600;
    const first = Math.max(0, Math.floor(this.scroll.scrollTop / ROW_HEIGHT) - OVERSCAN);
    const last = Math.min(this.rows.length, Math.ceil((this.scroll.scrollTop + height) / ROW_HEIGHT) + OVERSCAN);
    this.rowsBox.style.setProperty('top', `${first * ROW_HEIGHT}px`);
    const fragment = document.createDocumentFragment();
    for (let r = first; r < last; r++) fragment.append(this.renderRow(this.rows[r]));
    clear(this.rowsBox).append(fragment);
    if (this.onRendered) this.onRendered();
  }

  renderRow(row) {
    const t = this.table;
    if (row.node) {
      const node = row.node;
      const open = this.expanded.has(node.id);
      const minis = [];
      node.fateCounts.forEach((n, f) => {
        if (n) minis.push(el('span', {class: `mini ${t.fates[f]}`, title: FATE_LABELS[t.fates[f]]}, `${FATE_MARKS[t.fates[f]] || '●'}${formatCount(n)}`));
      });
      return el(
        'div',
        {
          class: 'vt-row node', data: {role: 'node-row'}, title: node.id,
          onclick: () => {
            if (open) this.expanded.delete(node.id);
            else this.expanded.add(node.id);
            this.refresh();
          },
        },
        el('span', {class: 'vt-name', style: {'padding-left': `${node.depth * 14}px`}},
          el('span', {class: 'caret'}, open ? '▾' : '▸'), el('span', null, `${node.name}/`)),
        el('span', null, minis),
        el('span', {class: 'muted'}, `${formatCount(node.total)} variables`),
        el('span', null, ''), el('span', null, ''), el('span', null, ''),
        el('span', {class: 'num'}, node.paramsKnown ? formatCount(node.params) : '—'),
      );
    }
    const i = row.leaf;
    const fate = t.fates[t.fate[i]];
    const key = t.key[i];
    return el(
      'div',
      {class: 'vt-row', data: {role: 'var-row', fate}, title: key ? `${t.path[i]}\ncheckpoint key: ${key}` : t.path[i]},
      el('span', {class: 'vt-name mono', style: {'padding-left': `${this.tree.leafDepth[i] * 14}px`}},
        el('span', {class: 'caret'}, ''), el('span', {data: {role: 'var-name'}}, this.tree.leafName[i])),
      el('span', null, el('span', {class: `fate ${fate}`}, FATE_LABELS[fate] || fate)),
      el('span', {class: 'mono'}, t.shape[i] || '—'),
      el('span', {class: 'mono'}, t.checkpoint[i] || ''),
      el('span', {class: 'mono'}, t.dtypes[t.dtype[i]] || ''),
      el('span', null, t.components[t.component[i]] || ''),
      el('span', {class: 'num'}, formatCount(t.params[i])),
    );
  }
}

// The application.

class Dashboard {
  constructor(root) {
    this.root = root;
    this.runs = [];
    this.selected = null;
    this.view = 'report';
    this.choice = {};  // run -> {tag, step} picked in the report selector
    this.compareWith = null;
    this.namingStep = null;
    this.tableMarked = false;
    this.generation = 0;
  }

  setState(state) {
    document.body.dataset.state = state;
  }

  async start() {
    this.setState('loading');
    this.runsList = el('ul', {class: 'runs', data: {role: 'runs'}});
    this.tabs = el('nav', {class: 'tabs'});
    this.content = el('div', {class: 'content', data: {role: 'content'}});
    this.root.append(el('div', {class: 'app'},
      el('aside', {class: 'sidebar'},
        el('div', {class: 'sidebar-head'},
          el('h1', null, 'od_guard runs'),
          el('button', {class: 'chip', data: {role: 'refresh'}, onclick: () => this.reload()}, 'refresh')),
        this.runsList),
      el('main', {class: 'main'}, this.tabs, this.content)));
    await this.reload();
  }

  async reload() {
    this.setState('loading');
    try {
      const data = await getJSON('runs');
      this.runs = data.runs;
    } catch (e) {
      this.showError(e);
      return;
    }
    if (!this.runs.some((r) => r.run === this.selected)) {
      // What needs attention first: the first failing run, else the first run.
      const first = this.runs.find((r) => r.decision === 'fail') || this.runs[0];
      this.selected = first ? first.run : null;
    }
    this.renderRuns();
    await this.show();
  }

  run(name) {
    return this.runs.find((r) => r.run === name) || null;
  }

  renderRuns() {
    clear(this.runsList);
    if (!this.runs.length) {
      this.runsList.append(el('li', {class: 'empty'}, 'No od_guard reports in this logdir yet.'));
      return;
    }
    this.runs.forEach((run, index) => {
      const report = run.reports[0];
      const header = report ? report.header : {};
      const meta = [];
      if (report) {
        meta.push(el('div', {class: 'run-meta', title: header.checkpoint || ''},
          'checkpoint: ', header.checkpoint ? basename(header.checkpoint) : '—'));
        if (header.kind === 'preflight') {
          meta.push(el('div', {class: 'run-meta', title: header.config || ''},
            'config: ', header.config ? basename(header.config) : 'Keras model (no pipeline config)'));
        } else {
          meta.push(el('div', {class: 'run-meta'},
            `${header.kind}: ${header.damaged || 0} damaged, ${header.unhealthy || 0} unhealthy tensor(s)`));
        }
      }
      if (run.naming) {
        meta.push(el('div', {class: 'run-meta'},
          `naming: ${run.naming.violations} violation(s) over ${run.naming.saves} save(s)`));
      }
      this.runsList.append(el(
        'li',
        {
          class: `run${run.run === this.selected ? ' selected' : ''}`,
          data: {role: 'run', index: String(index), decision: run.decision || 'none'},
          onclick: () => this.select(run.run),
        },
        el('div', {class: 'run-title'}, badge(run.decision), el('span', {class: 'run-name', data: {role: 'run-name'}}, run.run)),
        meta,
      ));
    });
  }

  async select(name) {
    this.selected = name;
    this.namingStep = null;
    this.renderRuns();
    await this.show();
  }

  async setView(view) {
    this.view = view;
    await this.show();
  }

  renderTabs() {
    clear(this.tabs);
    for (const [view, label] of [['report', 'Report'], ['naming', 'Naming over steps'], ['compare', 'Compare runs']]) {
      this.tabs.append(el('button', {
        class: `tab${this.view === view ? ' active' : ''}`, data: {role: 'tab', view},
        onclick: () => this.setView(view),
      }, label));
    }
  }

  showError(e) {
    clear(this.content).append(el('div', {class: 'error-box', data: {role: 'error'}}, String(e && e.message || e)));
    this.setState('error');
  }

  async show() {
    const generation = ++this.generation;
    this.renderTabs();
    this.setState('loading');
    const run = this.run(this.selected);
    const body = el('div');
    try {
      if (!run) body.append(el('div', {class: 'empty'}, 'Write a report (od-guard check --tensorboard_dir, the Keras guard with log_dir, or python -m od_guard.model_main_tf2) and refresh.'));
      else if (this.view === 'report') await this.renderReport(run, body);
      else if (this.view === 'naming') await this.renderNaming(run, body);
      else await this.renderCompare(run, body);
    } catch (e) {
      if (generation === this.generation) this.showError(e);
      return;
    }
    if (generation !== this.generation) return;  // a later click won
    clear(this.content).append(body);
    if (this.pendingTable) {
      const table = this.pendingTable;
      this.pendingTable = null;
      table.refresh();
    }
    this.setState('ready');
  }

  // Report view.

  async renderReport(run, body) {
    if (!run.reports.length) {
      body.append(el('div', {class: 'empty'}, 'This run has naming checks only: see "Naming over steps".'));
      return;
    }
    const choice = this.choice[run.run] || {tag: run.reports[0].tag, step: null};
    const kind = (run.reports.find((r) => r.tag === choice.tag) || run.reports[0]).kind;
    const params = {run: run.run, tag: choice.tag, step: choice.step};
    // Both at once: the server parses the record once for the two.
    const tablePromise = kind === 'preflight' ? getJSON('variables', params) : null;
    if (tablePromise) tablePromise.catch(() => {});  // awaited (and reported) below
    const data = await getJSON('report', params);
    const report = data.report;
    appendChildren(body, [this.reportPicker(run, data)]);
    if (data.kind !== 'preflight') {
      body.append(this.genericRecord(data));
      return;
    }
    const verdict = report.verdict || {};
    const findings = [...(report.findings || [])].sort(
      (a, b) => (SEVERITY_ORDER[a.severity] ?? 3) - (SEVERITY_ORDER[b.severity] ?? 3));
    const errors = findings.filter((f) => f.severity === 'error').length;
    const warnings = findings.filter((f) => f.severity === 'warning').length;
    body.append(el('div', {class: 'section', data: {role: 'verdict'}},
      el('div', {class: 'verdict'},
        badge(verdict.decision, true),
        el('span', {class: 'verdict-title'}, `od_guard preflight: ${(verdict.decision || '?').toUpperCase()}`,
          ` (${errors} error(s), ${warnings} warning(s))`),
        el('span', {class: 'muted'}, `tier ${report.tier} · policy ${(verdict.policy || {}).name || '?'}`,
          report.strategy ? ` · ${report.strategy}` : '', ` · step ${data.step}`)),
      verdict.reasons && verdict.reasons.length
        ? el('ul', {class: 'reasons'}, verdict.reasons.map((r) => el('li', null, r))) : null));
    body.append(this.findingsSection(findings));
    body.append(this.sourcesSection(report));
    if (report.restore && report.restore.coverage) body.append(this.coverageSection(report.restore));
    if (report.renames && report.renames.length) body.append(this.renamesSection(report.renames));
    if (report.not_checked && report.not_checked.length) {
      body.append(el('div', {class: 'section'}, el('h2', null, 'Not checked'),
        el('ul', {class: 'reasons'}, report.not_checked.map((n) => el('li', null, n)))));
    }
    body.append(this.variablesSection(await tablePromise));
  }

  reportPicker(run, data) {
    const options = [];
    for (const r of run.reports) {
      for (const s of r.steps) {
        options.push({tag: r.tag, step: s.step, label: `${r.kind} · ${r.tag} · step ${s.step} · ${new Date(s.wall_time * 1000).toLocaleString()}`});
      }
    }
    if (options.length < 2) return null;
    const select = el('select', {data: {role: 'report-picker'}, onchange: () => {
      const o = options[select.selectedIndex];
      this.choice[run.run] = {tag: o.tag, step: o.step};
      this.show();
    }}, options.map((o) => el('option', {selected: o.tag === data.tag && o.step === data.step}, o.label)));
    return el('div', {class: 'section'}, el('span', {class: 'muted'}, 'report: '), select);
  }

  findingsSection(findings) {
    const section = el('div', {class: 'section', data: {role: 'findings'}}, el('h2', null, `Findings (${findings.length})`));
    if (!findings.length) section.append(el('div', {class: 'muted'}, 'Nothing to report.'));
    for (const f of findings) {
      const head = el('div', {class: 'finding-head'},
        el('span', {class: `sev ${f.severity}`}, f.severity),
        el('span', {class: 'finding-title'}, f.title),
        el('span', {class: 'code-chip'}, `(${f.code})`));
      const body = [
        f.detail ? el('div', {class: 'finding-detail'}, f.detail) : null,
        f.fix ? el('div', {class: 'fix', data: {role: 'fix'}}, el('span', {class: 'fix-label'}, 'fix'), f.fix) : null,
        f.stock_outcome ? el('div', {class: 'finding-stock'}, `stock: ${f.stock_outcome}`) : null,
      ];
      // Facts (info) fold to their title; errors and warnings show everything.
      section.append(f.severity === 'info'
        ? el('details', {class: `finding ${f.severity}`, data: {role: 'finding', code: f.code}}, el('summary', null, head), body)
        : el('div', {class: `finding ${f.severity}`, data: {role: 'finding', code: f.code}}, head, body));
    }
    return section;
  }

  sourcesSection(report) {
    const ckpt = report.checkpoint || {};
    const config = report.config || {};
    const fp = report.fingerprint || {};
    const blocks = [];
    blocks.push(el('div', {data: {role: 'checkpoint'}}, el('h2', null, 'Checkpoint'), report.checkpoint ? kvTable([
      ['given', ckpt.given], ['resolved', ckpt.resolved], ['format', ckpt.format],
      ['data shards', ckpt.data_shards],
      ['tensors', ckpt.totals ? ckpt.totals.tensors : null],
      ['params', ckpt.totals ? formatCount(ckpt.totals.params) : null],
    ]) : el('div', {class: 'muted'}, 'No checkpoint was read.')));
    blocks.push(el('div', {data: {role: 'config'}}, el('h2', null, 'Config'),
      report.config ? kvTable(Object.entries(config)) : el('div', {class: 'muted'}, 'No pipeline config (a Keras model).')));
    if (report.fingerprint) {
      blocks.push(el('div', {data: {role: 'fingerprint'}}, el('h2', null, 'Fingerprint'), kvTable([
        ['description', fp.description], ['kind', fp.checkpoint_kind],
        ['meta-architecture', fp.meta_architecture], ['backbone', fp.backbone], ['neck', fp.neck],
        ['feature extractor types', (fp.feature_extractor_types || []).join(', ')],
        ['num classes', fp.num_classes], ['class slots', fp.class_slots],
        ['box outputs / location', fp.box_outputs_per_location],
        ['depth multiplier', fp.depth_multiplier],
        ['root objects', (fp.root_objects || []).join(', ')],
      ]), fp.evidence && fp.evidence.length
        ? el('details', null, el('summary', null, 'evidence'), el('ul', {class: 'reasons'}, fp.evidence.map((e) => el('li', null, typeof e === 'string' ? e : JSON.stringify(e)))))
        : null));
    }
    return el('div', {class: 'section grid2'}, blocks);
  }

  coverageSection(restore) {
    const rows = [];
    for (const c of restore.coverage) {
      const fraction = c.fraction || 0;
      const fillClass = fraction >= 0.999 ? '' : fraction > 0 ? ' partial' : ' zero';
      rows.push(
        el('span', {class: 'mono'}, c.component),
        el('div', {class: 'cov-bar', title: percent(fraction)},
          el('div', {class: `cov-fill${fillClass}`, style: {width: `${Math.max(0, Math.min(1, fraction)) * 100}%`}})),
        el('span', {class: 'cov-text'},
          `${percent(fraction)} · ${formatCount(c.restored_params)} / ${formatCount(c.total_params)} params · ${c.restored_tensors}/${c.total_tensors} tensors`),
      );
    }
    const counts = restore.counts || {};
    return el('div', {class: 'section', data: {role: 'coverage'}},
      el('h2', null, 'Coverage per component (parameter-weighted)'),
      el('div', {class: 'cov'}, rows),
      el('div', {class: 'status'}, `restore mode ${restore.mode} · ${Object.entries(counts).map(([k, v]) => `${k.replace(/_/g, ' ')} ${v}`).join(' · ')}`));
  }

  renamesSection(renames) {
    return el('div', {class: 'section', data: {role: 'renames'}},
      el('h2', null, 'Rename map'),
      el('table', {class: 'plain'},
        el('thead', null, el('tr', null, el('th', null, 'checkpoint scope'), el('th', null, ''), el('th', null, 'model scope'), el('th', null, 'variables'), el('th', null, 'finding'))),
        el('tbody', null, renames.map((r) => el('tr', null,
          el('td', {class: 'mono'}, r.old), el('td', null, '→'), el('td', {class: 'mono'}, r.new),
          el('td', null, r.count ?? ''), el('td', {class: 'code-chip'}, (r.codes || []).join(', ')))))),
      el('div', {class: 'status'}, 'Apply it with: od-guard remap SRC DST --from-report report.json'));
  }

  variablesSection(table) {
    performance.mark('od_guard:variables-fetched');
    const section = el('div', {class: 'section', data: {role: 'variables'}}, el('h2', null, 'Variables'));
    if (!table.has_restore) {
      section.append(el('div', {class: 'muted'},
        'This report has no variable list: the static tier reads the config and the checkpoint only. Run the model tier (without --static) for every variable\'s fate.'));
      return section;
    }
    const view = new VariableTable(table, () => this.markTable());
    this.variableTable = view;
    this.pendingTable = view;  // re-measured once attached to the document
    section.append(view.element);
    return section;
  }

  markTable() {
    if (this.tableMarked || !document.body.contains(this.variableTable && this.variableTable.element)) return;
    this.tableMarked = true;
    performance.mark('od_guard:table-rendered');
    document.body.dataset.tableRendered = '1';
  }

  genericRecord(data) {
    const record = data.report || {};
    const header = data.header || {};
    const verdict = record.verdict || {};
    const findings = Array.isArray(record.findings) ? record.findings : [];
    const known = ['verdict', 'findings', 'summary', 'damaged', 'unhealthy', 'tensors'];
    const rest = Object.entries(record).filter(([k]) => !known.includes(k));
    return el('div', null,
      el('div', {class: 'section', data: {role: 'verdict'}}, el('div', {class: 'verdict'},
        badge(header.decision, true),
        el('span', {class: 'verdict-title'}, `${data.kind}: ${(header.decision || 'no verdict').toUpperCase()}`),
        el('span', {class: 'muted'}, `step ${data.step}`)),
      Array.isArray(verdict.reasons) ? el('ul', {class: 'reasons'}, verdict.reasons.map((r) => el('li', null, r))) : null),
      findings.length ? this.findingsSection(findings) : null,
      record.summary && typeof record.summary === 'object' ? this.healthSummary(record.summary) : null,
      this.badTensors([...(record.damaged || []), ...(record.unhealthy || [])]),
      el('div', {class: 'section'}, el('h2', null, 'Record'), kvTable(rest)));
  }

  healthSummary(summary) {
    const columns = ['tensors', 'damaged', 'nan', 'inf', 'all_zero', 'constant', 'nonpositive_variance'];
    return el('div', {class: 'section', data: {role: 'health'}}, el('h2', null, 'Tensors per group'),
      el('table', {class: 'plain'},
        el('thead', null, el('tr', null, el('th', null, 'group'), columns.map((c) => el('th', {class: 'num'}, c.replace(/_/g, ' '))))),
        el('tbody', null, Object.entries(summary).map(([group, counts]) => el('tr', null,
          el('td', {class: 'mono'}, group), columns.map((c) => el('td', {class: 'num'}, String((counts || {})[c] ?? ''))))))));
  }

  badTensors(tensors) {
    if (!Array.isArray(tensors) || !tensors.length) return null;
    const shown = tensors.slice(0, 2000);
    return el('div', {class: 'section', data: {role: 'bad-tensors'}},
      el('h2', null, `Damaged or unhealthy tensors (${tensors.length})`),
      el('div', {class: 'scrollbox'}, el('table', {class: 'plain'},
        el('thead', null, el('tr', null, ['tensor', 'status', 'NaN', 'Inf', 'max |x|', 'detail'].map((h) => el('th', null, h)))),
        el('tbody', null, shown.map((t) => el('tr', null,
          el('td', {class: 'mono'}, t.path || t.key || ''), el('td', null, t.status || ''),
          el('td', {class: 'num'}, String(t.nan ?? '')), el('td', {class: 'num'}, String(t.inf ?? '')),
          el('td', {class: 'num'}, t.max_abs === null || t.max_abs === undefined ? '' : String(t.max_abs)),
          el('td', null, t.detail || '')))))));
  }

  // Naming view.

  async renderNaming(run, body) {
    const data = await getJSON('naming', {run: run.run});
    const section = el('div', {class: 'section', data: {role: 'naming'}},
      el('h2', null, 'Naming violations over training steps'));
    body.append(section);
    if (!data.saves.length) {
      section.append(el('div', {class: 'muted'},
        'No save in this run broke a naming rule (saves are checked by od_guard.save_guard, the Keras NamingGuard and python -m od_guard.model_main_tf2; only saves with violations are logged).'));
      return;
    }
    if (this.namingStep === null || !data.saves.some((s) => s.step === this.namingStep)) {
      this.namingStep = data.saves[data.saves.length - 1].step;
    }
    const head = el('tr', null, el('th', {class: 'rule'}, 'rule \\ save at step'), data.saves.map((s) => el('th', {
      class: `step${s.step === this.namingStep ? ' selected' : ''}`, title: s.checkpoint,
      data: {role: 'naming-step'},
      onclick: () => { this.namingStep = s.step; this.show(); },
    }, String(s.step))));
    const rows = data.rules.map((rule) => el('tr', {data: {role: 'naming-rule'}},
      el('th', {class: 'rule'}, rule),
      data.saves.map((s) => {
        const n = s.by_rule[rule] || 0;
        return el('td', {class: n ? 'hit' : 'zero'}, String(n));
      })));
    const totals = el('tr', null, el('th', {class: 'rule'}, 'total'),
      data.saves.map((s) => el('td', null, String(s.violations))));
    section.append(el('div', {class: 'scrollbox'}, el('table', {class: 'matrix'}, el('thead', null, head), el('tbody', null, rows, totals))));
    const detail = await getJSON('naming', {run: run.run, step: this.namingStep});
    section.append(el('h2', {style: {'margin-top': '14px'}}, `The save at step ${detail.step}: `, el('span', {class: 'mono'}, detail.checkpoint)),
      el('div', {class: 'status'}, `${detail.total} violation(s)${detail.total > detail.violations.length ? `, first ${detail.violations.length} shown` : ''}`),
      el('div', {class: 'scrollbox'}, el('table', {class: 'plain', data: {role: 'naming-detail'}},
        el('thead', null, el('tr', null, el('th', null, 'variable'), el('th', null, 'rule'), el('th', null, 'message'))),
        el('tbody', null, detail.violations.map((v) => el('tr', null,
          el('td', {class: 'mono'}, v.path), el('td', null, v.rule), el('td', null, v.message)))))));
  }

  // Compare view.

  async renderCompare(run, body) {
    const candidates = this.runs.filter((r) => r.reports.some((x) => x.kind === 'preflight'));
    const section = el('div', {class: 'section', data: {role: 'compare'}}, el('h2', null, 'Compare two runs'));
    body.append(section);
    if (candidates.length < 2) {
      section.append(el('div', {class: 'muted'}, 'Comparing needs two runs with preflight reports.'));
      return;
    }
    const a = candidates.some((r) => r.run === run.run) ? run.run : candidates[0].run;
    if (!this.compareWith || this.compareWith === a || !candidates.some((r) => r.run === this.compareWith)) {
      this.compareWith = candidates.find((r) => r.run !== a).run;
    }
    const b = this.compareWith;
    const pick = (value, role, onchange) => {
      const select = el('select', {data: {role}, onchange: () => onchange(candidates[select.selectedIndex].run)},
        candidates.map((r) => el('option', {selected: r.run === value}, r.run)));
      return select;
    };
    section.append(el('div', {class: 'toolbar'},
      el('span', {class: 'muted'}, 'A'), pick(a, 'compare-a', (name) => this.select(name)),
      el('span', {class: 'muted'}, '→ B'), pick(b, 'compare-b', (name) => { this.compareWith = name; this.show(); })));
    const diff = await getJSON('compare', {run_a: a, run_b: b});
    section.append(el('div', {class: 'section cmp-verdict', data: {role: 'compare-verdict'}},
      el('span', null, 'verdict'), badge(diff.verdict.a), el('span', null, '→'), badge(diff.verdict.b),
      diff.verdict.a === diff.verdict.b ? el('span', {class: 'muted'}, '(unchanged)') : el('span', {data: {role: 'verdict-changed'}}, '(changed)')));
    const f = diff.findings;
    const findingRows = [
      ...f.added.map((x) => ['added', x.severity, x.code, x.title]),
      ...f.removed.map((x) => ['removed', x.severity, x.code, x.title]),
      ...f.changed.map((x) => ['severity', `${x.a} → ${x.b}`, x.code, x.title]),
    ];
    section.append(el('div', {class: 'section', data: {role: 'compare-findings'}},
      el('h2', null, `Findings: ${f.added.length} added, ${f.removed.length} removed, ${f.changed.length} changed, ${f.unchanged.length} unchanged`),
      findingRows.length ? el('table', {class: 'plain'}, el('tbody', null, findingRows.map(([what, sev, code, title]) => el('tr', {data: {role: 'compare-finding', change: what}},
        el('td', {class: `nowrap ${what === 'added' ? 'added' : what === 'removed' ? 'removed' : ''}`}, what === 'added' ? '+ in B' : what === 'removed' ? '− only in A' : 'changed'),
        el('td', {class: 'nowrap'}, sev), el('td', {class: 'code-chip'}, code), el('td', null, title))))) : null));
    const diffs = [
      ...diff.config.map((d) => ['config', d]),
      ...diff.fingerprint.map((d) => ['fingerprint', d]),
    ];
    if (diff.checkpoint.a !== diff.checkpoint.b) diffs.unshift(['checkpoint', {field: 'given', a: diff.checkpoint.a, b: diff.checkpoint.b}]);
    if (diffs.length) {
      section.append(el('div', {class: 'section'}, el('h2', null, 'Checkpoint, config and fingerprint: what differs'),
        el('table', {class: 'plain'}, el('thead', null, el('tr', null, el('th', null, ''), el('th', null, 'field'), el('th', null, 'A'), el('th', null, 'B'))),
          el('tbody', null, diffs.map(([where, d]) => el('tr', null, el('td', {class: 'muted'}, where), el('td', null, d.field),
            el('td', {class: 'mono'}, JSON.stringify(d.a)), el('td', {class: 'mono'}, JSON.stringify(d.b))))))));
    }
    if (diff.coverage.length) {
      section.append(el('div', {class: 'section'}, el('h2', null, 'Coverage'),
        el('table', {class: 'plain'}, el('thead', null, el('tr', null, el('th', null, 'component'), el('th', null, 'A'), el('th', null, 'B'))),
          el('tbody', null, diff.coverage.map((c) => el('tr', null, el('td', {class: 'mono'}, c.component), el('td', null, percent(c.a)), el('td', null, percent(c.b))))))));
    }
    const fates = diff.fates;
    section.append(el('div', {class: 'section', data: {role: 'compare-fates'}},
      el('h2', null, `Variable fates: ${fates.changed_total.toLocaleString('en-US')} changed, ${fates.unchanged.toLocaleString('en-US')} unchanged`),
      fates.transitions.length ? el('table', {class: 'plain'}, el('tbody', null, fates.transitions.map((t) => el('tr', {data: {role: 'fate-transition', from: t.from, to: t.to}},
        el('td', null, el('span', {class: `fate ${t.from}`}, FATE_LABELS[t.from] || t.from)), el('td', null, '→'),
        el('td', null, el('span', {class: `fate ${t.to}`}, FATE_LABELS[t.to] || t.to)), el('td', {class: 'num'}, t.count.toLocaleString('en-US')))))) : null,
      fates.changed.length ? el('div', {class: 'scrollbox', style: {'margin-top': '8px'}}, el('table', {class: 'plain'},
        el('thead', null, el('tr', null, el('th', null, 'variable'), el('th', null, 'A'), el('th', null, 'B'))),
        el('tbody', null, fates.changed.map((c) => el('tr', {data: {role: 'changed-var'}}, el('td', {class: 'mono'}, c.path),
          el('td', null, el('span', {class: `fate ${c.a}`}, FATE_LABELS[c.a] || c.a)),
          el('td', null, el('span', {class: `fate ${c.b}`}, FATE_LABELS[c.b] || c.b))))))) : null,
      fates.changed.length < fates.changed_total ? el('div', {class: 'status'}, `first ${fates.changed.length} of ${fates.changed_total} listed`) : null));
  }
}

export async function render() {
  const link = document.createElement('link');
  link.rel = 'stylesheet';
  link.href = './style.css';
  document.head.append(link);
  const dashboard = new Dashboard(document.body);
  await dashboard.start();
}
