// Customer page: who, amounts open and collected, invoices by status, cases, and the whole
// timeline across the customer's invoices, cases and claims. It is the debtor's page: the same
// person's customers at every PSP (the API joins them, README "Debtors across PSPs"), listed in
// the "Across your PSPs" card, with their invoices and cases together. The "Payment behaviour"
// card shows the debtor's flags, each with why it holds, and the counts of the last 3, 6 and 12
// months (README "Payment behaviour profile").

import { api } from '../api.js';
import { h, mount, badge, words, link, idLink, routes, money, stat, card, table, facts, time, fmtMoney } from '../dom.js';
import { timeline } from './timeline.js';

export default async function customer(root, { args, alive }) {
  const ref = args[0];
  const c = await api(`/v1/customers/${encodeURIComponent(ref)}`);
  if (!alive()) return;
  const amounts = c.amounts.length ? c.amounts : [{ currency: 'EUR', open: { value: 0, currency: 'EUR' }, collected: { value: 0, currency: 'EUR' }, paidToMerchantAfterFailure: { value: 0, currency: 'EUR' } }];
  const caseById = new Map(c.cases.map((k) => [k.id, k]));

  mount(root, 
    h('nav', { class: 'crumbs' }, h('a', { href: '#/overview' }, 'Overview'), ' / Customer'),
    h(
      'div',
      { class: 'page-head' },
      h('div', null, h('h1', { dataset: { customer: c.ref } }, c.name ?? c.ref), h('p', { class: 'sub' }, h('code', null, c.ref), ' · ', h('code', null, c.id), c.email ? ` · ${c.email}` : '', c.country ? ` · ${c.country}` : '', ` · ${words(c.type)}`)),
      h('div', { class: 'page-tools' }, h('a', { class: 'btn', href: routes.log({ customer: c.ref }) }, 'Sync log for this customer')),
    ),
    h(
      'div',
      { class: 'stats' },
      amounts.flatMap((a) => [
        stat(`Open${c.amounts.length > 1 ? ` (${a.currency})` : ''}`, money(a.open), { tone: a.open.value > 0 ? 'amber' : null, id: 'open' }),
        stat(`Collected${c.amounts.length > 1 ? ` (${a.currency})` : ''}`, money(a.collected), { tone: a.collected.value > 0 ? 'green' : null, id: 'collected' }),
        stat('Paid to you after a failure', money(a.paidToMerchantAfterFailure), { id: 'paid-to-merchant' }),
      ]),
      stat('Invoices', String(c.invoiceCount), { note: Object.entries(c.byStatus).map(([s, v]) => `${v.count} ${words(s)}`).join(' · ') }),
    ),
    h(
      'div',
      { class: 'grid-2' },
      card(
        'Status',
        facts([
          ['Open cases', c.openCases.length ? h('span', null, c.openCases.map((k) => h('span', { class: 'inline-item' }, badge(k.status), ' ', k.partner, k.partnerRef ? ` (${k.partnerRef})` : ''))) : 'none'],
          ['Last failure', c.lastFailure ? h('span', null, words(c.lastFailure.reason), ' ', h('code', null, c.lastFailure.code), ' · ', time(c.lastFailure.at)) : null],
          ['How the last failure ended', c.lastOutcome ? h('span', null, badge(c.lastOutcome.status), ' ', words(c.lastOutcome.resolution ?? ''), c.lastOutcome.by ? ` · by ${c.lastOutcome.by}` : '', ' · ', link(routes.invoice(c.lastOutcome.invoiceId), 'invoice')) : 'not ended yet'],
          ['Failure reasons', c.failureReasons.length ? c.failureReasons.map((r) => `${words(r.reason)} × ${r.count}`).join(', ') : null],
          ['Subscription', c.subscriptionStatus ? words(c.subscriptionStatus) : null],
          ['Mandate', c.mandateStatus ? words(c.mandateStatus) : null],
        ]),
      ),
      card(
        'Cases',
        table(
          [
            { label: 'Case', cell: (k) => idLink(routes.log({ case: k.id }), k.id) },
            { label: 'Partner', cell: (k) => k.partner },
            { label: 'Status', cell: (k) => badge(k.status) },
            { label: 'Resolution', cell: (k) => words(k.resolution ?? '') },
            { label: 'Opened', cell: (k) => time(k.openedAt, { dateOnly: true }) },
          ],
          c.cases,
          { empty: 'Never handed over.' },
        ),
      ),
    ),
    behaviourCard(c.profile),
    debtorCard(c),
    card(
      'Invoices',
      table(
        [
          { label: 'Invoice', cell: (i) => link(routes.invoice(i.ref ?? i.id), i.number ?? i.ref ?? i.id) },
          { label: 'PSP', cell: (i) => i.provider ?? '—' },
          { label: 'PSP id', cell: (i) => h('code', null, i.ref ?? '—') },
          { label: 'Status', cell: (i) => badge(i.status) },
          { label: 'Resolution', cell: (i) => words(i.resolution ?? '') },
          { label: 'Failure reason', cell: (i) => words(i.failureReason ?? '') },
          { label: 'Due', class: 'num', cell: (i) => fmtMoney(i.amountDue) },
          { label: 'Collected', class: 'num', cell: (i) => fmtMoney(i.amountCollected) },
          { label: 'Case', cell: (i) => (i.caseId ? h('span', { class: 'nowrap' }, idLink(routes.log({ case: i.caseId }), i.caseId), caseById.get(i.caseId) ? ' ' : '', caseById.get(i.caseId) ? badge(caseById.get(i.caseId).status) : null) : '—') },
        ],
        c.invoices,
        { empty: 'No invoices.', rowAttrs: (i) => ({ dataset: { invoice: i.ref ?? i.id } }) },
      ),
    ),
    card('Timeline', timeline(c.timeline)),
  );
}

/** The person behind this customer at every PSP, and what joined them (the merchant's own id, an e-mail, or nothing). */
function debtorCard(c) {
  const d = c.debtor;
  if (!d) return null;
  const how = { merchant_ref: 'your customer id in the PSPs\u2019 metadata', email: 'the same e-mail address (opt-in)', psp_customer: 'this PSP customer only' }[d.matchedBy] ?? d.matchedBy;
  return card(
    'Across your PSPs',
    facts([
      ['Your customer id', d.merchantRef ? h('code', { dataset: { merchantRef: d.merchantRef } }, d.merchantRef) : null],
      ['Joined by', how],
    ]),
    table(
      [
        { label: 'PSP', cell: (x) => x.provider },
        { label: 'PSP customer', cell: (x) => (x.ref === c.ref ? h('code', null, x.ref) : link(routes.customer(x.ref), h('code', null, x.ref))) },
        { label: 'Name', cell: (x) => x.name ?? '—' },
        { label: 'E-mail', cell: (x) => x.email ?? '—' },
      ],
      d.identities,
      { rowAttrs: (x) => ({ dataset: { identity: `${x.provider}:${x.ref}` } }) },
    ),
  );
}

const FLAG_TONE = { in_collection_now: 'blue', broken_arrangement_12m: 'red', repeated_insufficient_funds: 'amber', disputed_12m: 'orange' };

/** The debtor's payment-behaviour flags with their why, and the counts per window. No score: the flags say why. */
function behaviourCard(p) {
  if (p === undefined) return null;
  if (p === null) return card('Payment behaviour', h('p', { class: 'muted' }, 'Not profiled: this customer\u2019s personal data was erased.'));
  const windows = ['3m', '6m', '12m'];
  const amounts = (t) => (t.amounts.length ? ` · ${t.amounts.map(fmtMoney).join(' + ')}` : '');
  const row = (label, cell) => ({ label, cell });
  const rows = [
    row('Failed payments', (w) => `${w.failures.count}${Object.keys(w.failures.byReason).length ? ` (${Object.entries(w.failures.byReason).map(([r, n]) => `${words(r)} ${n}`).join(', ')})` : ''}`),
    row('Recovered through the PSP', (w) => `${w.recovered.count}${amounts(w.recovered)}`),
    row('Handed over', (w) => `${w.handedOver.count}${amounts(w.handedOver)}`),
    row('Collected by the agency', (w) => `${w.collected.count} in full${amounts(w.collected)}`),
    row('Arrangements kept / broken', (w) => `${w.arrangements.kept} / ${w.arrangements.broken}`),
    row('Disputes', (w) => `${w.disputes.count}${amounts(w.disputes)}`),
    row('Written off', (w) => `${w.writtenOff.count}${amounts(w.writtenOff)}`),
  ];
  return h(
    'section',
    { class: ['card', p.flags.length ? 'card-attention' : null], dataset: { profile: p.debtorId } },
    h('h2', { class: 'card-title' }, 'Payment behaviour'),
    p.flags.length
      ? h('ul', { class: 'flags' }, p.flags.map((f) => h('li', { dataset: { flag: f.name } }, h('span', { class: ['badge', `tone-${FLAG_TONE[f.name] ?? 'grey'}`] }, words(f.name)), ' ', h('span', { class: 'flag-why' }, f.why))))
      : h('p', { class: 'muted', dataset: { flag: 'none' } }, 'No flags: nothing in this customer\u2019s history with you calls for attention.'),
    table(
      [{ label: '', cell: (r) => r.label }, ...windows.map((name) => ({ label: `Last ${name.replace('m', ' months')}`, cell: (r) => r.cell(p.windows[name]) }))],
      rows,
    ),
    h('p', { class: 'muted' }, `As of ${new Date(p.asOf).toLocaleString()} · from your own data only`),
  );
}
