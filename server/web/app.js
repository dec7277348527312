// m3serve dataset browser. Plain JavaScript, no build step, nothing loaded
// from elsewhere. Every text from the dataset is put in the page as text
// (textContent / text nodes), never parsed as HTML.
'use strict';

const TOKEN_KEY = 'm3serve.token';
const state = { info: null, catalog: null };

function token() { return sessionStorage.getItem(TOKEN_KEY) || ''; }
function authHeaders() { return token() ? { Authorization: 'Bearer ' + token() } : {}; }

// el('div', {class: 'x', 'data-id': id}, child, 'text', ...)
function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') e.textContent = String(v);
    else if (k.startsWith('on')) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, String(v));
  }
  for (const c of children) {
    if (c === null || c === undefined) continue;
    e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return e;
}
function svg(tag, attrs, ...children) {
  const e = document.createElementNS('http://www.w3.org/2000/svg', tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return e;
}
const num = (x) => Number(x || 0);
// replaceChildren() with the null / undefined entries left out.
function show(parent, ...children) { parent.replaceChildren(...children.filter((c) => c !== null && c !== undefined)); }
const fmt = (x) => num(x).toLocaleString('en-US');

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || ('HTTP ' + status));
    this.status = status;
    this.parameter = e.parameter || null;
  }
}

async function api(path) {
  const r = await fetch(path, { headers: authHeaders() });
  let body = null;
  try { body = await r.json(); } catch (_) { /* not JSON */ }
  if (r.status === 401) { showTokenForm(body && body.error ? body.error.message : ''); throw new ApiError(401, body); }
  if (!r.ok) throw new ApiError(r.status, body);
  return body;
}

// An image from the API: a plain URL without a token; with one, fetched with
// the Authorization header and shown from a blob URL.
function loadImage(img, url) {
  img.addEventListener('load', () => { img.dataset.loaded = img.naturalWidth + 'x' + img.naturalHeight; });
  img.addEventListener('error', () => { img.dataset.loaded = 'error'; });
  if (!token()) { img.src = url; return; }
  fetch(url, { headers: authHeaders() })
    .then((r) => (r.ok ? r.blob() : Promise.reject(new Error('HTTP ' + r.status))))
    .then((b) => { img.src = URL.createObjectURL(b); })
    .catch(() => { img.dataset.loaded = 'error'; });
}
function imageUrl(hash, size, instanceId) {
  return '/api/images/' + encodeURIComponent(hash) + '?size=' + size + '&instance=' + encodeURIComponent(instanceId);
}
function instancePath(id) { return id.split('/').map(encodeURIComponent).join('/'); }

function showTokenForm(message) {
  const form = document.getElementById('token-form');
  form.hidden = false;
  show(document.getElementById('main'));
  document.getElementById('token-error').textContent = token() ? (message || 'the token was not accepted') : '';
  document.getElementById('token-input').focus();
}

function showError(err) {
  const main = document.getElementById('main');
  if (err instanceof ApiError && err.status === 401) return;
  show(main, el('h1', { text: 'Error' }),
    el('p', { class: 'error', id: 'error', 'data-status': err.status || '', 'data-parameter': err.parameter || '',
      text: err.message }));
}

async function loadCatalog() {
  if (!state.info) state.info = await api('/api');
  if (!state.catalog) {
    state.catalog = await api('/api/catalog');
    document.getElementById('version').textContent = 'dataset ' + state.catalog.dataset_version.slice(0, 12);
  }
  document.getElementById('forget-token').hidden = !token();
  return state.catalog;
}

function route() {
  const hash = location.hash || '#/';
  const [path, query] = hash.slice(1).split('?');
  const params = new URLSearchParams(query || '');
  document.getElementById('token-form').hidden = true;
  let view;
  if (path.startsWith('/instance/')) view = showInstance(decodeURIComponent(path.slice('/instance/'.length)));
  else if (path === '/browse') view = showBrowse(params);
  else view = showOverview();
  view.catch(showError);
}

// ---------------------------------------------------------------- overview

function barChart(id, title, rows) {
  const bar = 18, labelW = 150, width = 760, maxV = Math.max(1, ...rows.map((r) => r[1]));
  const s = svg('svg', { id, width, height: rows.length * bar + 8, role: 'img', 'aria-label': title });
  rows.forEach(([label, v], i) => {
    const y = i * bar + 4, w = Math.max(1, (width - labelW - 90) * v / maxV);
    const g = svg('g', { 'data-label': label, 'data-value': v });
    g.append(svg('text', { x: labelW - 6, y: y + 12, 'text-anchor': 'end' }, label),
      svg('rect', { x: labelW, y: y + 2, width: w, height: bar - 5 }, svg('title', {}, label + ': ' + fmt(v))),
      svg('text', { x: labelW + w + 4, y: y + 12 }, fmt(v)));
    s.append(g);
  });
  return el('div', { class: 'chart' }, s);
}

async function showOverview() {
  const c = await loadCatalog();
  const main = document.getElementById('main');
  const perTask = new Map(), perLang = new Map();
  for (const g of c.counts || []) {
    const t = perTask.get(g.task) || { train: 0, validation: 0, test: 0, langs: new Map() };
    t[g.split] = (t[g.split] || 0) + num(g.instances);
    t.langs.set(g.language, (t.langs.get(g.language) || 0) + num(g.instances));
    perTask.set(g.task, t);
    perLang.set(g.language, (perLang.get(g.language) || 0) + num(g.instances));
  }
  const tasks = c.tasks || [];
  const byCategory = new Map();
  for (const t of tasks) {
    if (!byCategory.has(t.category)) byCategory.set(t.category, []);
    byCategory.get(t.category).push(t);
  }
  const table = el('table', { id: 'tasks' },
    el('thead', {}, el('tr', {}, ...['Task', 'Source', 'License', 'Commercial use', 'Held out', 'train', 'validation',
      'test', 'Languages', 'Instances'].map((h, i) => el('th', { class: i >= 5 && i !== 8 ? 'num' : null, text: h })))));
  const tbody = el('tbody');
  for (const [cat, ts] of [...byCategory.entries()].sort()) {
    tbody.append(el('tr', { class: 'category' }, el('th', { colspan: 10, text: cat || '(no category)' })));
    for (const t of ts.sort((a, b) => a.name.localeCompare(b.name))) {
      const n = perTask.get(t.name) || { train: 0, validation: 0, test: 0, langs: new Map() };
      const cu = (t.commercial_use || '').replace('COMMERCIAL_USE_', '').toLowerCase();
      tbody.append(el('tr', { class: 'task-row', 'data-task': t.name, 'data-count': num(t.instances) },
        el('td', {}, el('a', { href: '#/browse?tasks=' + encodeURIComponent(t.name), text: t.name })),
        el('td', { text: t.source_dataset }),
        el('td', { title: t.license_text, text: t.license }),
        el('td', {}, el('span', { class: cu === 'no' ? 'tag no' : 'tag', text: cu || 'unknown' })),
        el('td', { text: t.held_out ? 'yes' : '' }),
        el('td', { class: 'num', text: fmt(n.train) }),
        el('td', { class: 'num', text: fmt(n.validation) }),
        el('td', { class: 'num', text: fmt(n.test) }),
        el('td', { class: 'langs', text: [...n.langs.entries()].sort().map(([l, k]) => l + ' ' + fmt(k)).join(', ') }),
        el('td', { class: 'num instances', text: fmt(t.instances) })));
    }
  }
  table.append(tbody);
  const removed = (c.policy && c.policy.removed_tasks) || [];
  show(main, 
    el('h1', { text: 'M3IT in this store' }),
    el('div', { class: 'stats' },
      el('div', {}, el('b', { id: 'total-instances', text: fmt(c.total_instances) }), 'instances'),
      el('div', {}, el('b', { text: fmt(c.unique_images) }), 'distinct images'),
      el('div', {}, el('b', { id: 'task-count', text: tasks.length }), 'tasks'),
      el('div', {}, el('b', { text: (c.languages || []).length }), 'languages'),
      el('div', {}, el('b', { class: 'mono', text: c.dataset_version.slice(0, 16) }), 'dataset version')),
    removed.length ? el('p', { class: 'muted', id: 'removed', text: 'Not shown (license policy or your token): ' + removed.join(', ') }) : null,
    el('h2', { text: 'Tasks by category' }), table,
    el('h2', { text: 'Instances per task' }),
    barChart('chart-tasks', 'Instances per task', tasks.map((t) => [t.name, num(t.instances)]).sort((a, b) => b[1] - a[1])),
    el('h2', { text: 'Instances per language' }),
    barChart('chart-languages', 'Instances per language', [...perLang.entries()].sort((a, b) => b[1] - a[1])));
}

// ------------------------------------------------------------------ browse

const FILTERS = [['tasks', 'Task'], ['categories', 'Category'], ['splits', 'Split'], ['languages', 'Language'],
  ['licenses', 'License']];

function filterOptions(c, name) {
  const tasks = c.tasks || [];
  const uniq = (xs) => [...new Set(xs)].sort();
  switch (name) {
    case 'tasks': return uniq(tasks.map((t) => t.name));
    case 'categories': return uniq(tasks.map((t) => t.category));
    case 'splits': return uniq(c.splits || []);
    case 'languages': return uniq(c.languages || []);
    default: return uniq(tasks.map((t) => t.license));
  }
}

async function showBrowse(params) {
  const c = await loadCatalog();
  const main = document.getElementById('main');
  const page = Math.max(0, parseInt(params.get('page') || '0', 10) || 0);
  const pageSize = parseInt(params.get('page_size') || '24', 10) || 24;
  const go = (changes) => {
    const p = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) { if (v === '' || v === null) p.delete(k); else p.set(k, v); }
    if (!('page' in changes)) p.delete('page');
    location.hash = '#/browse?' + p.toString();
  };
  const filters = el('form', { class: 'filters', id: 'filters', onsubmit: (e) => e.preventDefault() });
  for (const [name, label] of FILTERS) {
    const sel = el('select', { name, id: 'filter-' + name, onchange: (e) => go({ [name]: e.target.value }) },
      el('option', { value: '', text: 'any' }));
    for (const v of filterOptions(c, name)) sel.append(el('option', { value: v, text: v, selected: params.get(name) === v }));
    filters.append(el('label', {}, label, sel));
  }
  const seed = el('input', { id: 'seed', name: 'seed', inputmode: 'numeric', value: params.get('seed') || '', placeholder: 'key order',
    onchange: (e) => go({ seed: e.target.value.trim() }) });
  filters.append(el('label', {}, 'Shuffle seed', seed),
    el('button', { type: 'button', id: 'shuffle', onclick: () => go({ seed: String(Math.floor(Math.random() * 1e9)) }), text: 'Shuffle' }),
    el('button', { type: 'button', id: 'sequential', onclick: () => go({ seed: '' }), text: 'Key order' }));
  show(main, el('h1', { text: 'Browse instances' }), filters, el('p', { class: 'muted', text: 'Loading…' }));

  const q = new URLSearchParams();
  for (const [name] of FILTERS) if (params.get(name)) q.set(name, params.get(name));
  if (params.get('seed')) q.set('seed', params.get('seed'));
  q.set('page', page);
  q.set('page_size', pageSize);
  const r = await api('/api/instances?' + q.toString());
  const pages = num(r.pages);
  const pager = el('div', { class: 'pager' },
    page > 0 ? el('a', { href: '#', id: 'prev', onclick: (e) => { e.preventDefault(); go({ page: page - 1 }); }, text: '← previous' }) : null,
    el('span', { id: 'page-info', 'data-total': num(r.total), text: 'page ' + (page + 1) + ' of ' + Math.max(1, pages) + ' · ' + fmt(r.total) + ' instances' + (r.order === 'shuffled' ? ' · shuffled, seed ' + r.seed : ' · key order') }),
    page + 1 < pages ? el('a', { href: '#', id: 'next', onclick: (e) => { e.preventDefault(); go({ page: page + 1 }); }, text: 'next →' }) : null);
  const grid = el('div', { class: 'grid', id: 'grid' });
  for (const x of r.instances) {
    const thumb = el('div', { class: 'thumb' });
    if (x.images && x.images.length) {
      const img = el('img', { alt: 'image 1 of ' + x.images.length });
      loadImage(img, imageUrl(x.images[0].content_hash, 256, x.id));
      thumb.append(img);
    } else {
      thumb.append(el('span', { class: 'muted', text: 'no image' }));
    }
    grid.append(el('a', { class: 'card', href: '#/instance/' + x.id, 'data-id': x.id, 'data-task': x.task,
      'data-language': x.language, 'data-split': x.split },
    thumb,
    el('div', { class: 'body' },
      el('div', { class: 'id', text: x.id }),
      el('div', {}, el('span', { class: 'tag', text: x.task }), el('span', { class: 'tag', text: x.split }),
        el('span', { class: 'tag', text: x.language }), x.images.length > 1 ? el('span', { class: 'tag', text: x.images.length + ' images' }) : null),
      el('div', { class: 'text instruction', text: x.instruction }),
      el('div', { class: 'text muted outputs', text: '→ ' + x.outputs }))));
  }
  show(main, el('h1', { text: 'Browse instances' }), filters, pager, grid,
    r.instances.length ? null : el('p', { class: 'muted', id: 'empty', text: 'No instances on this page.' }));
}

// ---------------------------------------------------------------- instance

// A code block with a button that copies it (or selects it where the clipboard API is not offered).
function copyable(id, text) {
  const pre = el('pre', { class: 'code', id, text });
  const button = el('button', { type: 'button', class: 'copy', text: 'Copy', onclick: () => {
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(() => { button.textContent = 'Copied'; });
    } else {
      const range = document.createRange();
      range.selectNodeContents(pre);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      button.textContent = 'Selected: press Ctrl-C';
    }
  } });
  return el('div', { class: 'copyable' }, button, pre);
}

function field(title, id, text) {
  return [el('h2', { text: title }), el('div', { class: 'field', id, text })];
}

async function showInstance(id) {
  await loadCatalog();
  const main = document.getElementById('main');
  show(main, el('p', { class: 'muted', text: 'Loading ' + id + '…' }));
  const r = await api('/api/instances/' + instancePath(id));
  const x = r.instance, t = r.task;
  const images = el('div', { class: 'images', id: 'images' });
  (x.images || []).forEach((im, i) => {
    const img = el('img', { class: 'instance-image', alt: 'image ' + (i + 1) + ' of ' + x.images.length });
    loadImage(img, imageUrl(im.content_hash, 768, x.id));
    const original = el('a', { href: '#', text: 'original', onclick: (e) => {
      e.preventDefault();
      fetch(imageUrl(im.content_hash, 0, x.id), { headers: authHeaders() }).then((resp) => resp.blob())
        .then((b) => window.open(URL.createObjectURL(b), '_blank'));
    } });
    images.append(el('figure', {}, img, el('figcaption', {},
      (t.modality === 'MODALITY_VIDEO' ? 'frame ' : 'image ') + (i + 1) + ' of ' + x.images.length + ' · ' +
      im.width + '×' + im.height + ' ' + (im.format || '').replace('FORMAT_', '').toLowerCase() + ' · ', original)));
  });
  let meta = x.meta_json || '';
  try { if (meta) meta = JSON.stringify(JSON.parse(meta), null, 2); } catch (_) { /* shown as stored */ }
  const host = location.hostname.includes(':') ? '[' + location.hostname + ']' : location.hostname;
  const target = host + ':' + (state.info.grpc_port || 50051);
  const cli = 'm3serve-client get --target ' + target + (token() ? ' --token-file TOKEN_FILE' : '') + ' ' + x.id + ' --dump ./' + x.id.replace(/\//g, '_');
  const py = 'from m3serve import Client\n\nclient = Client("' + target + '"' + (token() ? ', token=open("TOKEN_FILE").read().strip()' : '') + ')\n' +
    'x = client.get(["' + x.id + '"])[0]\nprint(x.instruction, x.outputs, len(x.images))';
  const pool = r.instruction_pool || [];
  const cu = (t.commercial_use || '').replace('COMMERCIAL_USE_', '').toLowerCase();
  show(main, 
    el('p', {}, el('a', { href: '#/browse?tasks=' + encodeURIComponent(x.task), text: '← ' + x.task })),
    el('h1', { id: 'instance-id', text: x.id }),
    el('div', {}, el('span', { class: 'tag', text: x.task }), el('span', { class: 'tag', text: x.split }),
      el('span', { class: 'tag', text: x.language }), el('span', { class: 'tag', text: t.category })),
    el('h2', { text: (x.images || []).length ? 'Images (' + x.images.length + ')' : 'Images' }), images,
    ...field('Instruction' + (r.instruction_from_pool ? ' (from the task\'s pool)' : ''), 'instance-instruction', x.instruction),
    ...field('Inputs', 'instance-inputs', x.inputs),
    ...field('Outputs', 'instance-outputs', x.outputs),
    ...(meta ? field('Meta', 'instance-meta', meta) : []),
    el('h2', { text: 'License and source' }),
    el('dl', { class: 'meta', id: 'attribution' },
      el('dt', { text: 'Source dataset' }), el('dd', { text: x.source_dataset }),
      el('dt', { text: 'License' }), el('dd', { id: 'instance-license', text: x.license }),
      el('dt', { text: 'License terms' }), el('dd', { text: t.license_text || '—' }),
      el('dt', { text: 'Commercial use' }), el('dd', { text: cu || 'unknown' }),
      el('dt', { text: 'Held out for evaluation' }), el('dd', { text: t.held_out ? 'yes (M3IT paper)' : 'no' }),
      el('dt', { text: 'Source row' }), el('dd', { text: r.source.file + ':' + r.source.line }),
      el('dt', { text: 'Dataset version' }), el('dd', { text: r.dataset_version })),
    el('h2', { text: 'Get it' }),
    copyable('cli-command', cli),
    copyable('python-snippet', py),
    el('h2', { text: 'Instruction pool (' + pool.length + ')' }),
    pool.length ? el('details', { id: 'pool' }, el('summary', { text: 'the task\'s instructions for ' + x.language }),
      el('ol', { class: 'pool' }, ...pool.map((p) => el('li', { text: p })))) : el('p', { class: 'muted', text: 'none' }));
}

// ------------------------------------------------------------------- start

document.getElementById('token-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById('token-input').value.trim());
  state.catalog = null;
  route();
});
document.getElementById('forget-token').addEventListener('click', () => {
  sessionStorage.removeItem(TOKEN_KEY);
  state.catalog = null;
  location.reload();
});
window.addEventListener('hashchange', route);
route();
