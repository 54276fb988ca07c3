// Names, colours and chart data for the leakage report's buckets, shared by the overview and
// the leakage page.

import { PALETTE } from '../chart.js';
import { words } from '../dom.js';

export const BUCKETS = [
  { key: 'recovered_by_psp', label: 'Recovered by the PSP', color: PALETTE.green, tone: 'green' },
  { key: 'psp_retrying', label: 'PSP still retrying', color: PALETTE.amber, tone: 'amber' },
  { key: 'pending_handover', label: 'Pending hand-over', color: '#f0b849', tone: 'amber' },
  { key: 'waiting_notice_gate', label: "Inside the debtor's notice term", color: '#e8a33d', tone: 'amber' },
  { key: 'waiting_letter_evidence', label: 'Waiting for letter evidence', color: '#d9822b', tone: 'amber' },
  { key: 'held_by_merchant', label: 'Held by you', color: PALETTE.slate, tone: 'slate' },
  { key: 'below_min_amount', label: 'Below your minimum amount', color: '#c9a227', tone: 'amber' },
  { key: 'in_collection', label: 'In collection', color: PALETTE.blue, tone: 'blue' },
  { key: 'handover_refused', label: 'Hand-over refused by the agency', color: PALETTE.orange, tone: 'orange' },
  { key: 'collected', label: 'Collected by the agency', color: '#116329', tone: 'green' },
  { key: 'paid_to_merchant_after_handover', label: 'Paid to you after hand-over', color: PALETTE.teal, tone: 'green' },
  { key: 'owed_back_to_debtor', label: 'Paid twice: owed back to the debtor', color: PALETTE.orange, tone: 'orange' },
  { key: 'written_off', label: 'Written off', color: PALETTE.slate, tone: 'slate' },
  { key: 'disputed', label: 'Disputed', color: PALETTE.orange, tone: 'orange' },
  { key: 'cancelled', label: 'Cancelled or voided', color: PALETTE.grey, tone: 'grey' },
  { key: 'unexplained', label: 'Unexplained', color: PALETTE.red, tone: 'red' },
];
export const BUCKET = Object.fromEntries(BUCKETS.map((b) => [b.key, b]));

const STATUS_ORDER = ['open', 'pending_handover', 'submitted', 'in_collection', 'arrangement', 'partially_paid', 'on_hold', 'disputed', 'paid', 'recovered', 'settled', 'uncollectible', 'withdrawn', 'closed', 'voided'];
const STATUS_COLOR = {
  open: PALETTE.amber, pending_handover: '#f0b849', submitted: '#7fb0f5', in_collection: PALETTE.blue, arrangement: '#5b6ee1', partially_paid: '#3b5bdb', on_hold: PALETTE.slate,
  disputed: PALETTE.orange, paid: '#116329', recovered: PALETTE.green, settled: PALETTE.green, uncollectible: PALETTE.red, withdrawn: PALETTE.grey, closed: PALETTE.grey, voided: PALETTE.grey,
};

function rank(status) {
  const i = STATUS_ORDER.indexOf(status);
  return i < 0 ? STATUS_ORDER.length : i;
}

/** The currency most failed payments are in (charts show one currency). */
export function mainCurrency(items) {
  const n = new Map();
  for (const i of items) n.set(i.amountDue.currency, (n.get(i.amountDue.currency) ?? 0) + 1);
  return [...n.entries()].sort((a, b) => b[1] - a[1])[0]?.[0] ?? 'EUR';
}

/** Amount due of the failed payments per current invoice status, in one currency. */
export function amountByStatus(items, currency) {
  const sums = new Map();
  for (const i of items) if (i.amountDue.currency === currency) sums.set(i.status, (sums.get(i.status) ?? 0) + i.amountDue.value);
  return [...sums.entries()]
    .sort((a, b) => rank(a[0]) - rank(b[0]))
    .map(([status, value]) => ({ label: words(status), value, color: STATUS_COLOR[status] ?? PALETTE.grey }));
}

/** How the failures of each reason ended up: counts per bucket, reasons with most failures first. */
export function outcomesByReason(items) {
  const byReason = new Map();
  for (const i of items) {
    const r = i.failureReason ?? 'unknown';
    const m = byReason.get(r) ?? new Map();
    m.set(i.bucket, (m.get(i.bucket) ?? 0) + 1);
    byReason.set(r, m);
  }
  return [...byReason.entries()]
    .map(([reason, m]) => ({ label: words(reason), segments: BUCKETS.map((b) => ({ key: b.key, value: m.get(b.key) ?? 0 })) }))
    .sort((a, b) => b.segments.reduce((n, x) => n + x.value, 0) - a.segments.reduce((n, x) => n + x.value, 0));
}
