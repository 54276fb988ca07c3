// Invoice page: status and resolution, amounts due, paid, collected and open, the failure, the
// hand-over, case and claim, arrangement, and the invoice's whole timeline.

import { api } from '../api.js';
import { h, mount, badge, words, link, routes, money, stat, card, facts, time, fmtMoney } from '../dom.js';
import { timeline } from './timeline.js';

export default async function invoice(root, { args, alive }) {
  const ref = args[0];
  const inv = await api(`/v1/invoices/${encodeURIComponent(ref)}`);
  if (!alive()) return;
  const f = inv.failure;
  const arrangement = inv.arrangement ?? inv.claim?.arrangement ?? null;

  mount(root, 
    h('nav', { class: 'crumbs' }, h('a', { href: '#/overview' }, 'Overview'), ' / ', link(routes.customer(inv.customerId), 'Customer'), ' / Invoice'),
    h(
      'div',
      { class: 'page-head' },
      h(
        'div',
        null,
        h('h1', { dataset: { invoice: inv.ref ?? inv.id } }, `Invoice ${inv.number ?? inv.ref ?? inv.id}`, ' ', badge(inv.status)),
        h('p', { class: 'sub' }, h('code', null, inv.ref ?? '—'), ' · ', h('code', null, inv.id), ` · ${inv.provider}`, inv.resolution ? h('span', null, ' · resolved: ', h('strong', { dataset: { role: 'resolution' } }, words(inv.resolution)), inv.resolvedBy ? ` by ${inv.resolvedBy}` : '') : ''),
      ),
      h('div', { class: 'page-tools' }, h('a', { class: 'btn', href: routes.customer(inv.customerId) }, 'Customer'), h('a', { class: 'btn', href: routes.log({ invoice: inv.ref ?? inv.id }) }, 'Sync log for this invoice')),
    ),
    h(
      'div',
      { class: 'stats' },
      stat('Amount due', money(inv.amountDue), { id: 'due' }),
      stat('Paid through the PSP', money(inv.amountPaid), { id: 'paid' }),
      stat('Collected by the agency', money(inv.amountCollected), { tone: inv.amountCollected.value > 0 ? 'green' : null, id: 'collected' }),
      stat('Open', money(inv.amountOpen), { tone: inv.amountOpen.value > 0 ? 'amber' : null, id: 'open' }),
    ),
    h(
      'div',
      { class: 'grid-2' },
      card(
        'Payment failure',
        f
          ? facts([
              ['Reason', h('span', null, words(f.reason), ' ', h('code', null, f.code))],
              ['Message', f.message],
              ['PSP retries', f.final ? 'no — final failure' : f.retryable ? 'yes' : 'no'],
              ['Failures', String(f.count)],
              ['First failed', time(f.firstAt)],
              ['Last failed', time(f.lastAt)],
              ['Hand-over due', time(inv.handoverDueAt)],
            ])
          : h('p', { class: 'muted' }, 'No failed payment on this invoice.'),
      ),
      card(
        'Collection',
        facts([
          ['Case', inv.case ? h('span', null, link(routes.log({ case: inv.case.id }), inv.case.id), ' ', badge(inv.case.status)) : 'not handed over'],
          ['Partner', inv.case ? `${inv.case.partner}${inv.case.partnerRef ? ` · their ref ${inv.case.partnerRef}` : ' · not yet accepted'}` : null],
          ['Claim', inv.claim ? h('span', null, h('code', null, inv.claim.id), ' ', badge(inv.claim.status), inv.claim.resolution ? ` ${words(inv.claim.resolution)}` : '', ` · collected ${fmtMoney(inv.claim.amountCollected)}`) : null],
          ['Arrangement', arrangement ? `${arrangement.installments ?? '?'} instalments of ${arrangement.amount ? fmtMoney(arrangement.amount) : '?'}${arrangement.firstDueAt ? `, first due ${new Date(arrangement.firstDueAt).toLocaleDateString('en-GB')}` : ''}` : null],
          ['Subscription', inv.subscriptionRef ? h('code', null, inv.subscriptionRef) : null],
          ['Payment method', inv.paymentMethod ? words(inv.paymentMethod) : null],
          ['Issued', time(inv.issuedAt)],
        ]),
      ),
    ),
    card('Timeline', timeline(inv.timeline, { invoiceLinks: false })),
  );
}
