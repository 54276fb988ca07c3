// Cases: totals by status and by partner over every case (dashboard route /v1/case-totals),
// and the cases themselves from /v1/cases, filtered by status and partner, paged.

import { api, qs } from '../api.js';
import { h, mount, badge, words, idLink, routes, card, table, time, fmtMoney, fmtNumber } from '../dom.js';

const STATUSES = ['submitted', 'in_collection', 'arrangement', 'partially_paid', 'on_hold', 'disputed', 'paid', 'withdrawn', 'uncollectible', 'closed'];
const PAGE = 25;

function sumBy(rows, key) {
  const out = new Map();
  for (const r of rows) {
    const k = `${r[key]}\u0000${r.currency}`;
    const t = out.get(k) ?? { key: r[key], currency: r.currency, cases: 0, principal: 0, collected: 0 };
    t.cases += r.cases;
    t.principal += r.principal.value;
    t.collected += r.collected.value;
    out.set(k, t);
  }
  return [...out.values()];
}

function totalsTable(label, rows, render, filterKey, current, navigateTo) {
  return table(
    [
      { label, cell: (r) => h('a', { href: navigateTo({ [filterKey]: r.key }), class: r.key === current ? 'current' : null }, render(r.key)) },
      { label: 'Cases', class: 'num', cell: (r) => fmtNumber(r.cases) },
      { label: 'Principal', class: 'num', cell: (r) => fmtMoney({ value: r.principal, currency: r.currency }) },
      { label: 'Collected', class: 'num', cell: (r) => fmtMoney({ value: r.collected, currency: r.currency }) },
      { label: 'Outstanding', class: 'num', cell: (r) => fmtMoney({ value: Math.max(0, r.principal - r.collected), currency: r.currency }) },
    ],
    rows,
    { empty: 'No cases yet.', rowAttrs: (r) => ({ dataset: { total: r.key } }) },
  );
}

export default async function cases(root, { params, navigate, alive }) {
  const status = params.get('status') ?? '';
  const partner = params.get('partner') ?? '';
  const to = (patch) => {
    const q = new URLSearchParams(qs({ status, partner, ...patch }).slice(1));
    const s = q.toString();
    return `#/cases${s ? `?${s}` : ''}`;
  };
  const totals = await api('/v1/case-totals');
  if (!alive()) return;
  const byStatus = sumBy(totals.rows, 'status').sort((a, b) => STATUSES.indexOf(a.key) - STATUSES.indexOf(b.key));
  const byPartner = sumBy(totals.rows, 'partner');
  const partners = [...new Set(totals.rows.map((r) => r.partner))];

  const statusSel = h('select', { name: 'status', onchange: () => navigate(to({ status: statusSel.value })) }, h('option', { value: '' }, 'Any status'), STATUSES.map((s) => h('option', { value: s, selected: s === status }, words(s))));
  const partnerSel = h('select', { name: 'partner', onchange: () => navigate(to({ partner: partnerSel.value })) }, h('option', { value: '' }, 'Any partner'), partners.map((p) => h('option', { value: p, selected: p === partner }, p)));
  const body = h('tbody');
  const more = h('button', { type: 'button', class: 'btn', hidden: true }, 'Load more cases');
  const count = h('span', { class: 'muted small' });
  const grand = totals.total.map((t) => `${fmtNumber(t.cases)} cases · ${fmtMoney(t.principal)} handed over · ${fmtMoney(t.collected)} collected`).join(' | ');

  mount(root, 
    h('div', { class: 'page-head' }, h('h1', null, 'Cases'), h('p', { class: 'muted', dataset: { role: 'grand-total' } }, grand || 'No cases yet.')),
    h('div', { class: 'grid-2' }, card('By status', totalsTable('Status', byStatus, (k) => badge(k), 'status', status, to)), card('By partner', totalsTable('Partner', byPartner, (k) => k, 'partner', partner, to))),
    h(
      'div',
      { class: 'card card-flush' },
      h('div', { class: 'card-toolbar' }, h('h2', { class: 'card-title' }, 'Cases', status || partner ? ' (filtered)' : ''), h('div', { class: 'filters-inline' }, statusSel, partnerSel, status || partner ? h('a', { class: 'btn btn-ghost', href: '#/cases' }, 'Clear') : null)),
      h(
        'table',
        { class: 'data' },
        h('thead', null, h('tr', null, ['Case', 'Customer', 'Partner', 'Status', 'Invoices (claims)', 'Principal', 'Collected', 'Opened · closed'].map((t) => h('th', { class: ['Principal', 'Collected'].includes(t) ? 'num' : null }, t)))),
        body,
      ),
      h('div', { class: 'table-foot' }, count, more),
    ),
  );

  let shown = 0;
  async function load(cursor) {
    more.disabled = true;
    const page = await api(`/v1/cases${qs({ status, partner, limit: PAGE, cursor })}`);
    if (!alive()) return;
    if (!cursor && !page.data.length) body.append(h('tr', { class: 'empty' }, h('td', { colspan: 8 }, 'No cases match.')));
    for (const k of page.data) {
      body.append(
        h(
          'tr',
          { dataset: { case: k.id, status: k.status } },
          h('td', null, idLink(routes.log({ case: k.id }), k.id), k.partnerRef ? h('div', { class: 'muted small' }, `their ref ${k.partnerRef}`) : null),
          h('td', null, idLink(routes.customer(k.customerId), k.customerId)),
          h('td', null, k.partner),
          h('td', null, badge(k.status), k.resolution ? h('div', { class: 'muted small' }, words(k.resolution)) : null),
          h('td', null, k.claims.map((c) => h('div', { class: 'claim-line' }, idLink(routes.invoice(c.invoiceId), c.invoiceId), ' ', badge(c.status)))),
          h('td', { class: 'num' }, fmtMoney(k.principal)),
          h('td', { class: 'num' }, fmtMoney(k.collected)),
          h('td', { class: 'nowrap small' }, time(k.openedAt, { dateOnly: true }), k.closedAt ? h('div', { class: 'muted' }, time(k.closedAt, { dateOnly: true })) : null),
        ),
      );
    }
    shown += page.data.length;
    count.textContent = `${shown} case${shown === 1 ? '' : 's'} shown${page.next ? ' · more below' : ''}`;
    more.hidden = !page.next;
    more.disabled = false;
    more.onclick = () => load(page.next);
  }
  await load(null);
}
