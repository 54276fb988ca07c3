// Sync log: every exchange, newest first; filters; paging with the API's `next` cursor; new
// entries every 2 s through `after=<newest id>`; a row opens to show its (redacted) payloads.

import { api, qs, download } from '../api.js';
import { h, clear, mount, time, badge, words, link, idLink, routes, json, facts, errorBox } from '../dom.js';

export const OUTCOMES = ['ok', 'duplicate', 'ignored', 'retrying', 'dead', 'rejected', 'stale', 'failed'];
const FILTERS = ['customer', 'invoice', 'case', 'direction', 'outcome', 'from', 'to'];
const PAGE = 50;
const POLL_MS = 2000;

function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}`;
}

function fromLocalInput(v) {
  if (!v) return '';
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

function entryRows(x, { fresh = false } = {}) {
  const detail = h(
    'tr',
    { class: 'detail', hidden: true, dataset: { detailFor: String(x.id) } },
    h(
      'td',
      { colspan: 9 },
      h(
        'div',
        { class: 'detail-grid' },
        facts([
          ['Entry', `#${x.id}`],
          ['Summary', x.summary],
          ['Customer', x.customerId ? link(routes.customer(x.customerId), x.customerId) : null],
          ['Invoice', x.invoiceId ? link(routes.invoice(x.invoiceId), x.invoiceId) : null],
          ['Case', x.caseId ? link(routes.log({ case: x.caseId }), x.caseId) : null],
          ['Delivery', x.deliveryId ? link('#/deliveries', `#${x.deliveryId}`) : null],
        ]),
        h('div', { class: 'payload' }, h('h3', null, x.direction === 'in' ? 'Received' : 'Request sent'), json(x.request)),
        h('div', { class: 'payload' }, h('h3', null, x.direction === 'in' ? 'Our answer' : 'Answer'), json(x.response)),
      ),
    ),
  );
  const row = h(
    'tr',
    {
      class: ['entry', fresh && 'fresh'],
      tabindex: 0,
      'aria-expanded': 'false',
      dataset: { id: String(x.id), outcome: x.outcome, direction: x.direction },
      onclick: (e) => {
        if (e.target.closest('a')) return;
        toggle();
      },
      onkeydown: (e) => {
        if (e.key === 'Enter' || e.key === ' ') {
          e.preventDefault();
          toggle();
        }
      },
    },
    h('td', { class: 'nowrap' }, time(x.at)),
    h('td', { class: 'dir', title: x.direction === 'in' ? 'inbound' : 'outbound' }, h('span', { class: `dir-${x.direction}` }, x.direction === 'in' ? '↓ in' : '↑ out')),
    h('td', null, x.party),
    h('td', { class: 'op' }, x.operation),
    h('td', null, badge(x.outcome)),
    h('td', { class: 'num' }, x.httpStatus ?? '—'),
    h('td', { class: 'num nowrap' }, x.latencyMs == null ? '—' : `${x.latencyMs} ms`),
    h('td', { class: 'refs' }, x.customerId ? idLink(routes.customer(x.customerId), x.customerId) : null, x.invoiceId ? idLink(routes.invoice(x.invoiceId), x.invoiceId) : null),
    h('td', { class: 'summary', title: x.summary ?? '' }, x.summary ?? ''),
  );
  function toggle() {
    detail.hidden = !detail.hidden;
    row.setAttribute('aria-expanded', String(!detail.hidden));
    row.classList.toggle('open', !detail.hidden);
  }
  return [row, detail];
}

export default async function syncLog(root, { params, navigate, alive }) {
  const filters = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) ?? '']));
  const active = FILTERS.filter((k) => filters[k]);

  const status = h('span', { class: 'live', dataset: { live: 'on' } }, h('span', { class: 'live-dot' }), 'Live');
  const note = h('span', { class: 'muted small' });
  const field = (name, label, input) => h('label', { class: 'field' }, h('span', null, label), input);
  const inputs = {
    customer: h('input', { name: 'customer', value: filters.customer, placeholder: 'cus_… or cust_…' }),
    invoice: h('input', { name: 'invoice', value: filters.invoice, placeholder: 'in_… or inv_…' }),
    direction: h('select', { name: 'direction' }, [['', 'Any'], ['in', 'Inbound'], ['out', 'Outbound']].map(([v, l]) => h('option', { value: v, selected: filters.direction === v }, l))),
    outcome: h('select', { name: 'outcome' }, h('option', { value: '' }, 'Any'), OUTCOMES.map((o) => h('option', { value: o, selected: filters.outcome === o }, words(o)))),
    from: h('input', { name: 'from', type: 'datetime-local', value: toLocalInput(filters.from) }),
    to: h('input', { name: 'to', type: 'datetime-local', value: toLocalInput(filters.to) }),
  };
  const exportMsg = h('span', { class: 'muted small', dataset: { role: 'export-status' } });
  const form = h(
    'form',
    {
      class: 'filters',
      onsubmit: (e) => {
        e.preventDefault();
        navigate(
          routes.log({
            customer: inputs.customer.value.trim(),
            invoice: inputs.invoice.value.trim(),
            case: filters.case,
            direction: inputs.direction.value,
            outcome: inputs.outcome.value,
            from: fromLocalInput(inputs.from.value),
            to: fromLocalInput(inputs.to.value),
          }),
        );
      },
    },
    field('customer', 'Customer', inputs.customer),
    field('invoice', 'Invoice', inputs.invoice),
    field('direction', 'Direction', inputs.direction),
    field('outcome', 'Outcome', inputs.outcome),
    field('from', 'From', inputs.from),
    field('to', 'To', inputs.to),
    h('div', { class: 'filter-actions' }, h('button', { type: 'submit', class: 'btn btn-primary' }, 'Apply'), active.length ? h('a', { class: 'btn btn-ghost', href: '#/log' }, 'Clear') : null),
  );
  const body = h('tbody');
  const more = h('button', { type: 'button', class: 'btn', hidden: true }, 'Load older entries');
  const count = h('span', { class: 'muted small', dataset: { role: 'count' } });
  const tableEl = h(
    'table',
    { class: 'data log' },
    h('colgroup', null, ['time', 'dir', 'party', 'op', 'outcome', 'http', 'latency', 'refs', 'summary'].map((c) => h('col', { class: `col-${c}` }))),
    h('thead', null, h('tr', null, [['Time'], ['Dir'], ['PSP / partner'], ['Event / call'], ['Outcome'], ['HTTP', 'num'], ['Latency', 'num'], ['Customer · invoice'], ['Summary']].map(([t, c]) => h('th', { class: c }, t)))),
    body,
  );

  mount(root, 
    h(
      'div',
      { class: 'page-head' },
      h('h1', null, 'Sync log'),
      h('div', { class: 'page-tools' }, status, note, h('button', { type: 'button', class: 'btn', dataset: { action: 'export-log' }, onclick: exportCsv }, 'Export CSV'), exportMsg),
    ),
    h('p', { class: 'lead' }, 'Every exchange with your PSPs and your collection partner, newest first. Click a row to see what was sent and answered (secrets are masked).'),
    active.length ? h('p', { class: 'chips' }, 'Filtered by ', active.map((k) => h('span', { class: 'chip' }, `${k}: ${k === 'from' || k === 'to' ? new Date(filters[k]).toLocaleString('en-GB') : filters[k]}`))) : null,
    form,
    h('div', { class: 'card card-flush' }, tableEl, h('div', { class: 'table-foot' }, count, more)),
  );

  let newest = 0;
  let next = null;
  let shown = 0;
  const base = Object.fromEntries(FILTERS.map((k) => [k, filters[k]]));

  function setCount() {
    count.textContent = shown ? `${shown} entr${shown === 1 ? 'y' : 'ies'} shown${next ? ' · more below' : ''}` : '';
  }

  async function loadPage(cursor) {
    more.disabled = true;
    try {
      const page = await api(`/v1/sync-log${qs({ ...base, limit: PAGE, cursor })}`);
      if (!alive()) return;
      if (!cursor && !page.data.length) body.append(h('tr', { class: 'empty' }, h('td', { colspan: 9 }, active.length ? 'No exchanges match these filters.' : 'No exchanges yet.')));
      for (const x of page.data) body.append(...entryRows(x));
      if (!cursor && page.data[0]) newest = page.data[0].id;
      shown += page.data.length;
      next = page.next;
      more.hidden = !next;
      setCount();
    } finally {
      more.disabled = false;
    }
  }
  more.addEventListener('click', () => loadPage(next).catch((err) => root.append(errorBox(err))));

  async function exportCsv() {
    exportMsg.textContent = 'Preparing…';
    try {
      const name = await download(`/v1/sync-log.csv${qs(base)}`);
      exportMsg.textContent = `Downloaded ${name}`;
    } catch (err) {
      exportMsg.textContent = `Export failed: ${err.message}`;
    }
  }

  await loadPage(null);

  // New entries without a reload: ask for what is newer than the newest row shown.
  let busy = false;
  let failures = 0;
  const timer = setInterval(async () => {
    if (busy || !alive()) return;
    busy = true;
    try {
      const page = await api(`/v1/sync-log${qs({ ...base, after: newest, limit: 200 })}`);
      if (!alive()) return;
      failures = 0;
      status.dataset.live = 'on';
      status.lastChild.textContent = 'Live';
      if (page.next) {
        // More arrived than one poll carries: start again from the newest page.
        clear(body);
        shown = 0;
        newest = 0;
        await loadPage(null);
        return;
      }
      if (page.data.length) {
        body.querySelector('tr.empty')?.remove();
        const rows = page.data.flatMap((x) => entryRows(x, { fresh: true }));
        body.prepend(...rows);
        newest = page.data[0].id;
        shown += page.data.length;
        setCount();
        note.textContent = `${page.data.length} new at ${new Date().toLocaleTimeString('en-GB')}`;
      }
    } catch {
      failures++;
      status.dataset.live = 'off';
      status.lastChild.textContent = failures > 1 ? 'Reconnecting…' : 'Live';
    } finally {
      busy = false;
    }
  }, POLL_MS);
  return () => clearInterval(timer);
}
