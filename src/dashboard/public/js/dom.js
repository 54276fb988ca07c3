// Small DOM and formatting helpers. Data is only ever put into the page as text (textContent,
// attributes), never as HTML, so nothing a PSP or an agency sent can run in the page.

const SVG_NS = 'http://www.w3.org/2000/svg';

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs ?? {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith('on') && typeof v === 'function') el.addEventListener(k.slice(2).toLowerCase(), v);
    else if (k === 'class') el.setAttribute('class', Array.isArray(v) ? v.filter(Boolean).join(' ') : v);
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value' && 'value' in el) el.value = v;
    else if (k === 'checked' || k === 'disabled' || k === 'selected') el[k] = Boolean(v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
}

/** h('div', { class: 'x', onclick }, 'text', child, [more]) */
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

/** The same for SVG elements. */
export function s(tag, attrs, ...children) {
  const el = document.createElementNS(SVG_NS, tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

export function clear(el) {
  while (el.firstChild) el.firstChild.remove();
  return el;
}

/** Replace what el holds with children (null, undefined and false are left out, as in h()). */
export function mount(el, ...children) {
  clear(el);
  append(el, children);
  return el;
}

const LOCALE = 'en-GB';
const dateTime = new Intl.DateTimeFormat(LOCALE, { year: 'numeric', month: 'short', day: '2-digit', hour: '2-digit', minute: '2-digit', second: '2-digit' });
const dateOnly = new Intl.DateTimeFormat(LOCALE, { year: 'numeric', month: 'short', day: '2-digit' });

/** A time element: local time shown, the exact ISO time on hover. */
export function time(iso, opts = {}) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const d = new Date(iso);
  return h('time', { datetime: iso, title: iso }, (opts.dateOnly ? dateOnly : dateTime).format(d));
}

export function fmtTime(iso) {
  return iso ? dateTime.format(new Date(iso)) : '—';
}

const moneyFormats = new Map();
function moneyFormat(currency) {
  let f = moneyFormats.get(currency);
  if (!f) {
    try {
      f = new Intl.NumberFormat(LOCALE, { style: 'currency', currency });
    } catch {
      f = new Intl.NumberFormat(LOCALE, { style: 'currency', currency: 'XXX' });
    }
    moneyFormats.set(currency, f);
  }
  return f;
}

/** Minor units → the currency's own decimals (EUR 2, JPY 0, KWD 3), as Intl knows them. */
export function minorDigits(currency) {
  return moneyFormat(currency).resolvedOptions().maximumFractionDigits;
}

/** { value: 7000, currency: 'EUR' } → "€70.00" */
export function fmtMoney(m) {
  if (!m || m.value === null || m.value === undefined) return '—';
  return moneyFormat(m.currency).format(m.value / 10 ** minorDigits(m.currency));
}

export function money(m, cls) {
  return h('span', { class: ['num', cls] }, fmtMoney(m));
}

export function fmtNumber(n) {
  return new Intl.NumberFormat(LOCALE).format(n);
}

/** "in_collection" → "in collection" */
export function words(s) {
  return s ? String(s).replace(/_/g, ' ') : '';
}

const STATUS_TONE = {
  ok: 'green', paid: 'green', recovered: 'green', settled: 'green', collected: 'green', recovered_by_psp: 'green', paid_to_merchant_after_handover: 'green', done: 'green',
  submitted: 'blue', in_collection: 'blue', arrangement: 'blue', partially_paid: 'blue', on_hold: 'blue',
  open: 'amber', pending_handover: 'amber', psp_retrying: 'amber', retrying: 'amber', pending: 'amber',
  uncollectible: 'red', written_off: 'red', dead: 'red', failed: 'red', unexplained: 'red', payment_failed: 'red', chargeback: 'orange',
  payment_succeeded: 'green', refunded: 'grey',
  disputed: 'orange', rejected: 'orange',
  stale: 'purple',
  duplicate: 'slate', ignored: 'grey', withdrawn: 'grey', closed: 'grey', voided: 'grey', cancelled: 'grey',
};

export function tone(status) {
  return STATUS_TONE[status] ?? 'grey';
}

/** A coloured pill for a status, outcome or bucket. */
export function badge(status, label) {
  return h('span', { class: ['badge', `tone-${tone(status)}`], dataset: { status: status ?? '' } }, label ?? words(status) ?? '—');
}

export function link(href, ...children) {
  return h('a', { href }, ...children);
}

/** A link that shows one of the hub's long ids, set small in the monospace font. */
export function idLink(href, id) {
  return h('a', { href, class: 'id', title: id }, id);
}

export const routes = {
  customer: (ref) => `#/customers/${encodeURIComponent(ref)}`,
  invoice: (ref) => `#/invoices/${encodeURIComponent(ref)}`,
  log: (filters = {}) => {
    const q = new URLSearchParams(Object.entries(filters).filter(([, v]) => v !== undefined && v !== null && v !== ''));
    const s = q.toString();
    return `#/log${s ? `?${s}` : ''}`;
  },
};

/** A titled white card. */
export function card(title, ...children) {
  return h('section', { class: 'card' }, title ? h('h2', { class: 'card-title' }, title) : null, ...children);
}

/** A key figure: label, value, optional note. */
export function stat(label, value, opts = {}) {
  return h('div', { class: ['stat', opts.tone && `stat-${opts.tone}`], dataset: { stat: opts.id ?? '' } }, h('div', { class: 'stat-label' }, label), h('div', { class: 'stat-value' }, value), opts.note ? h('div', { class: 'stat-note' }, opts.note) : null);
}

/** A table from column specs: { label, cell: (row) => node|string, class? }. */
export function table(columns, rows, opts = {}) {
  const head = h('thead', null, h('tr', null, columns.map((c) => h('th', { class: c.class }, c.label))));
  const body = h('tbody');
  for (const r of rows) body.append(h('tr', opts.rowAttrs ? opts.rowAttrs(r) : null, columns.map((c) => h('td', { class: c.class }, c.cell(r)))));
  if (!rows.length && opts.empty) body.append(h('tr', { class: 'empty' }, h('td', { colspan: columns.length }, opts.empty)));
  return h('table', { class: ['data', opts.class] }, head, body);
}

/** Key/value list. */
export function facts(pairs) {
  return h('dl', { class: 'facts' }, pairs.filter(Boolean).map(([k, v]) => [h('dt', null, k), h('dd', null, v ?? h('span', { class: 'muted' }, '—'))]));
}

export function errorBox(err) {
  return h('div', { class: 'alert alert-error', role: 'alert' }, err?.status === 404 ? 'Not found for this merchant.' : `Could not load: ${err?.message ?? err}`);
}

export function loading() {
  return h('div', { class: 'loading' }, 'Loading…');
}

/** Pretty JSON for a payload, or a dash. */
export function json(v) {
  if (v === null || v === undefined) return h('span', { class: 'muted' }, '—');
  return h('pre', { class: 'json' }, JSON.stringify(v, null, 2));
}
