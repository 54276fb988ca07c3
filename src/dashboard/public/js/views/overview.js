// Overview: the key figures, two charts (amount by status, outcomes by failure reason), what
// needs attention, and the latest exchanges.

import { api } from '../api.js';
import { h, mount, badge, link, routes, card, stat, time, fmtMoney, fmtNumber } from '../dom.js';
import { barChart, stackedBarChart } from '../chart.js';
import { BUCKETS, mainCurrency, amountByStatus, outcomesByReason } from './leakage-model.js';

function sumAmounts(totals, keys, currency) {
  return keys.reduce((n, k) => n + (totals[k]?.amounts?.[currency] ?? 0), 0);
}

export default async function overview(root, { me, alive }) {
  const [report, dead, recent, caseTotals] = await Promise.all([
    api('/v1/reports/leakage'),
    api('/v1/deliveries?status=dead&limit=100'),
    api('/v1/sync-log?limit=8'),
    api('/v1/case-totals'),
  ]);
  if (!alive()) return;
  const currency = mainCurrency(report.items);
  const t = report.totals;
  const unexplained = t.unexplained.count;
  const openCases = caseTotals.rows.filter((r) => !['paid', 'withdrawn', 'uncollectible', 'closed'].includes(r.status)).reduce((n, r) => n + r.cases, 0);

  const attention = [];
  if (unexplained) attention.push(h('li', null, badge('unexplained', `${unexplained} unexplained`), ' failed payment', unexplained === 1 ? '' : 's', ' with no follow-up — ', link('#/leakage', 'see the leakage report')));
  if (dead.data.length) attention.push(h('li', null, badge('dead', `${dead.data.length} dead-lettered`), ' call', dead.data.length === 1 ? '' : 's', ' to your partner — ', link('#/deliveries', 'retry from Deliveries')));

  mount(root, 
    h('div', { class: 'page-head' }, h('div', null, h('h1', null, 'Overview'), h('p', { class: 'sub' }, `${me.name} · hands over to ${me.partner} after ${me.policy.handoverAfterDays} days · minimum ${fmtMoney(me.policy.minAmount)}`))),
    h(
      'div',
      { class: 'stats' },
      stat('Failed payments', fmtNumber(report.failedPayments), { id: 'failed', note: `${fmtNumber(report.accountedFor)} accounted for` }),
      stat('Unexplained', fmtNumber(unexplained), { id: 'unexplained', tone: unexplained ? 'red' : 'green', note: unexplained ? fmtMoney({ value: t.unexplained.amounts[currency] ?? 0, currency }) : 'no leak' }),
      stat('In collection', fmtMoney({ value: sumAmounts(t, ['in_collection', 'pending_handover'], currency), currency }), { id: 'in-collection', tone: 'blue', note: `${fmtNumber(openCases)} open case${openCases === 1 ? '' : 's'}` }),
      stat('Recovered', fmtMoney({ value: sumAmounts(t, ['recovered_by_psp', 'collected', 'paid_to_merchant_after_handover'], currency), currency }), { id: 'recovered', tone: 'green', note: 'by the PSP, the agency or paid to you' }),
      stat('Dead-lettered calls', fmtNumber(dead.data.length), { id: 'dead', tone: dead.data.length ? 'red' : null }),
    ),
    attention.length ? h('section', { class: 'card card-attention', dataset: { role: 'attention' } }, h('h2', { class: 'card-title' }, 'Needs your attention'), h('ul', { class: 'attention' }, attention)) : null,
    h(
      'div',
      { class: 'grid-2' },
      card(`Failed payments by status (amount, ${currency})`, barChart(amountByStatus(report.items, currency), { title: `Amount of failed payments by current status, ${currency}`, format: (v) => fmtMoney({ value: v, currency }) })),
      card('Outcomes by failure reason', stackedBarChart(outcomesByReason(report.items), BUCKETS, { title: 'Failed payments by failure reason and outcome' })),
    ),
    card(
      'Latest exchanges',
      recent.data.length
        ? h(
            'ul',
            { class: 'recent' },
            recent.data.map((x) =>
              h('li', null, time(x.at), h('span', { class: `dir-${x.direction}` }, x.direction === 'in' ? '↓' : '↑'), h('span', { class: 'party' }, x.party), h('span', { class: 'op' }, x.operation), badge(x.outcome), x.httpStatus ? h('span', { class: 'muted' }, String(x.httpStatus)) : null),
            ),
          )
        : h('p', { class: 'muted' }, 'No exchanges yet.'),
      h('p', null, link(routes.log(), 'Open the sync log →')),
    ),
  );
}
