// Leakage report: every failed payment of the period accounted for — by bucket, with totals —
// and the unexplained ones highlighted. Period filter and CSV export.

import { api, qs, download } from '../api.js';
import { h, mount, badge, words, link, idLink, routes, card, table, time, fmtMoney, fmtNumber } from '../dom.js';
import { barChart, stackedBarChart } from '../chart.js';
import { BUCKETS, BUCKET, outcomesByReason, mainCurrency } from './leakage-model.js';

function amounts(a) {
  const list = Object.entries(a ?? {});
  return list.length ? list.map(([currency, value]) => fmtMoney({ value, currency })).join(' + ') : fmtMoney({ value: 0, currency: 'EUR' });
}

function dateInput(iso) {
  return iso ? new Date(iso).toISOString().slice(0, 10) : '';
}

export default async function leakage(root, { params, navigate, alive }) {
  const from = params.get('from') ?? '';
  const to = params.get('to') ?? '';
  const bucketFilter = params.get('bucket') ?? '';
  const r = await api(`/v1/reports/leakage${qs({ from, to })}`);
  if (!alive()) return;
  const unexplained = r.totals.unexplained;
  const pendingDue = r.items.filter((i) => i.bucket === 'pending_handover' && i.handoverDueAt).map((i) => i.handoverDueAt).sort();

  const fromIn = h('input', { type: 'date', name: 'from', value: dateInput(from) });
  const toIn = h('input', { type: 'date', name: 'to', value: dateInput(to) });
  const exportMsg = h('span', { class: 'muted small', dataset: { role: 'export-status' } });
  const hash = (patch) => `#/leakage${qs({ from, to, bucket: bucketFilter, ...patch })}`;

  const headline =
    r.failedPayments === 0
      ? h('div', { class: 'banner banner-ok', dataset: { role: 'headline' } }, h('strong', null, 'No failed payments in this period.'))
      : unexplained.count === 0
        ? h('div', { class: 'banner banner-ok', dataset: { role: 'headline' } }, h('strong', null, `All ${fmtNumber(r.failedPayments)} failed payments are accounted for.`), ' Unexplained leakage: ', h('strong', null, amounts(unexplained.amounts)), '.')
        : h('div', { class: 'banner banner-bad', dataset: { role: 'headline' } }, h('strong', null, `${fmtNumber(unexplained.count)} of ${fmtNumber(r.failedPayments)} failed payments unexplained`), ` — ${amounts(unexplained.amounts)} with no follow-up. ${fmtNumber(r.accountedFor)} accounted for.`);

  const currency = mainCurrency(r.items);
  const items = bucketFilter ? r.items.filter((i) => i.bucket === bucketFilter) : r.items;
  mount(root, 
    h(
      'div',
      { class: 'page-head' },
      h('div', null, h('h1', null, 'Leakage report'), h('p', { class: 'sub' }, r.period.from || r.period.to ? `Failures first seen ${r.period.from ? `from ${new Date(r.period.from).toLocaleDateString('en-GB')}` : ''} ${r.period.to ? `until ${new Date(r.period.to).toLocaleDateString('en-GB')}` : ''}` : 'All failed payments, whenever they first failed')),
      h(
        'form',
        {
          class: 'filters-inline',
          onsubmit: (e) => {
            e.preventDefault();
            navigate(hash({ from: fromIn.value ? new Date(`${fromIn.value}T00:00:00Z`).toISOString() : '', to: toIn.value ? new Date(`${toIn.value}T00:00:00Z`).toISOString() : '' }));
          },
        },
        h('label', { class: 'field field-inline' }, h('span', null, 'From'), fromIn),
        h('label', { class: 'field field-inline' }, h('span', null, 'To'), toIn),
        h('button', { class: 'btn', type: 'submit' }, 'Apply'),
        h('button', { class: 'btn', type: 'button', dataset: { action: 'export-leakage' }, onclick: async () => {
          exportMsg.textContent = 'Preparing…';
          try {
            exportMsg.textContent = `Downloaded ${await download(`/v1/reports/leakage.csv${qs({ from, to })}`)}`;
          } catch (err) {
            exportMsg.textContent = `Export failed: ${err.message}`;
          }
        } }, 'Export CSV'),
        exportMsg,
      ),
    ),
    headline,
    h(
      'div',
      { class: 'buckets' },
      BUCKETS.map((b) => {
        const t = r.totals[b.key] ?? { count: 0, amounts: {} };
        const note = b.key === 'pending_handover' && pendingDue.length ? `hand-over by ${new Date(pendingDue[pendingDue.length - 1]).toLocaleDateString('en-GB')}` : null;
        return h(
          'a',
          { class: ['bucket', `bucket-${b.tone}`, t.count === 0 && 'bucket-zero', bucketFilter === b.key && 'current'], href: hash({ bucket: bucketFilter === b.key ? '' : b.key }), dataset: { bucket: b.key, count: String(t.count) } },
          h('span', { class: 'bucket-label' }, b.label),
          h('span', { class: 'bucket-count' }, fmtNumber(t.count)),
          h('span', { class: 'bucket-amount' }, amounts(t.amounts)),
          note ? h('span', { class: 'bucket-note' }, note) : null,
        );
      }),
    ),
    r.unexplained.length
      ? h(
          'section',
          { class: 'card card-alert', dataset: { role: 'unexplained' } },
          h('h2', { class: 'card-title' }, `Unexplained (${r.unexplained.length}) — a failure with no follow-up`),
          table(
            [
              { label: 'Invoice', cell: (i) => link(routes.invoice(i.ref ?? i.invoiceId), i.number ?? i.ref ?? i.invoiceId) },
              { label: 'Customer', cell: (i) => idLink(routes.customer(i.customerId), i.customerId) },
              { label: 'Amount', class: 'num', cell: (i) => fmtMoney(i.amountDue) },
              { label: 'Failure', cell: (i) => words(i.failureReason ?? '') },
              { label: 'First failed', cell: (i) => time(i.firstFailedAt, { dateOnly: true }) },
              { label: 'Status', cell: (i) => badge(i.status) },
              { label: 'Why it is unexplained', cell: (i) => h('strong', null, i.why ?? '') },
            ],
            r.unexplained,
            { rowAttrs: (i) => ({ dataset: { invoice: i.ref ?? i.invoiceId } }) },
          ),
        )
      : null,
    h(
      'div',
      { class: 'grid-2' },
      card(`Amount by outcome (${currency})`, barChart(BUCKETS.filter((b) => r.totals[b.key]?.count).map((b) => ({ label: b.label, value: r.totals[b.key].amounts[currency] ?? 0, color: b.color })), { title: `Amount of failed payments by outcome, ${currency}`, format: (v) => fmtMoney({ value: v, currency }), labelWidth: 170 })),
      card('Outcomes by failure reason', stackedBarChart(outcomesByReason(r.items), BUCKETS, { title: 'Failed payments by failure reason and outcome' })),
    ),
    card(
      bucketFilter ? `Failed payments: ${BUCKET[bucketFilter]?.label ?? bucketFilter}` : 'Every failed payment',
      table(
        [
          { label: 'Invoice', cell: (i) => link(routes.invoice(i.ref ?? i.invoiceId), i.number ?? i.ref ?? i.invoiceId) },
          { label: 'Customer', cell: (i) => idLink(routes.customer(i.customerId), i.customerId) },
          { label: 'Accounted as', cell: (i) => h('span', { class: ['badge', `tone-${BUCKET[i.bucket]?.tone ?? 'grey'}`] }, BUCKET[i.bucket]?.label ?? words(i.bucket)) },
          { label: 'Status', cell: (i) => badge(i.status) },
          { label: 'Amount', class: 'num', cell: (i) => fmtMoney(i.amountDue) },
          { label: 'Failure', cell: (i) => words(i.failureReason ?? '') },
          { label: 'First failed', cell: (i) => time(i.firstFailedAt, { dateOnly: true }) },
          { label: 'Hand-over due', cell: (i) => (i.handoverDueAt ? time(i.handoverDueAt, { dateOnly: true }) : '—') },
          { label: 'Case', cell: (i) => (i.caseId ? idLink(routes.log({ case: i.caseId }), i.caseId) : '—') },
        ],
        items,
        { empty: 'None.', class: 'items', rowAttrs: (i) => ({ class: i.bucket === 'unexplained' ? 'row-alert' : null, dataset: { invoice: i.ref ?? i.invoiceId, bucket: i.bucket } }) },
      ),
    ),
  );
}
