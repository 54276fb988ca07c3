// Deliveries: calls to the collection partner by status — the dead letter by default — with a
// Retry button (POST /v1/deliveries/:id/retry) that then follows the sync log until the retried
// call has an outcome, and shows it.

import { api, qs } from '../api.js';
import { h, clear, mount, badge, words, link, idLink, routes, card, time, json } from '../dom.js';

const STATUSES = [
  ['dead', 'Dead-lettered'],
  ['pending', 'Waiting to be sent'],
  ['in_flight', 'Being sent'],
  ['done', 'Delivered'],
];
const FOLLOW_MS = 30_000;
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

export default async function deliveries(root, { params, navigate, alive }) {
  const status = params.get('status') || 'dead';
  const page = await api(`/v1/deliveries${qs({ status, limit: 100 })}`);
  if (!alive()) return;
  const sel = h('select', { name: 'status', onchange: () => navigate(`#/deliveries?status=${sel.value}`) }, STATUSES.map(([v, l]) => h('option', { value: v, selected: v === status }, l)));

  mount(root, 
    h('div', { class: 'page-head' }, h('h1', null, 'Deliveries'), h('div', { class: 'page-tools' }, sel)),
    h(
      'p',
      { class: 'lead' },
      status === 'dead'
        ? 'Calls to your collection partner that failed for good (the partner refused them, or every retry failed). Fix the cause, then retry: the call is sent again with the same idempotency key, so it cannot be applied twice.'
        : `Calls to your collection partner with status “${words(status)}”.`,
    ),
    page.data.length
      ? h('div', { class: 'deliveries' }, page.data.map((d) => deliveryCard(d, status, alive)))
      : h('div', { class: 'card empty-state', dataset: { role: 'empty' } }, status === 'dead' ? '✓ Nothing in the dead letter: every call went through or is still being retried.' : 'None.'),
  );
}

function deliveryCard(d, status, alive) {
  const outcome = h('div', { class: 'retry-outcome', dataset: { role: 'retry-outcome' }, 'aria-live': 'polite' });
  const button = h('button', { type: 'button', class: 'btn btn-primary', dataset: { action: 'retry', delivery: String(d.id) } }, 'Retry');
  const statusBadge = h('span', null, badge(d.status, d.status === 'dead' ? 'dead-lettered' : words(d.status)));
  button.addEventListener('click', () => retry(d, { button, outcome, statusBadge }, alive));
  const scope = d.caseId ? { case: d.caseId } : d.customerId ? { customer: d.customerId } : {};
  return card(
    null,
    h(
      'div',
      { class: 'delivery', dataset: { delivery: String(d.id) } },
      h(
        'div',
        { class: 'delivery-head' },
        h('div', null, h('strong', null, `#${d.id} ${words(d.kind.replace(/^agency\./, ''))}`), ' → ', d.partner, ' ', statusBadge),
        status === 'dead' ? button : null,
      ),
      h(
        'dl',
        { class: 'facts facts-inline' },
        h('dt', null, 'Attempts'), h('dd', null, String(d.attempts)),
        h('dt', null, 'Last answer'), h('dd', null, d.lastStatus ? `HTTP ${d.lastStatus}` : '—'),
        h('dt', null, 'Customer'), h('dd', null, d.customerId ? idLink(routes.customer(d.customerId), d.customerId) : '—'),
        d.invoiceId ? [h('dt', null, 'Invoice'), h('dd', null, idLink(routes.invoice(d.invoiceId), d.invoiceId))] : null,
        h('dt', null, 'Case'), h('dd', null, d.caseId ? idLink(routes.log({ case: d.caseId }), d.caseId) : '—'),
        h('dt', null, 'Created'), h('dd', null, time(d.createdAt)),
        h('dt', null, 'Last tried'), h('dd', null, time(d.updatedAt)),
      ),
      d.lastError ? h('p', { class: 'delivery-error' }, d.lastError) : null,
      d.lastResponse ? h('details', null, h('summary', null, 'The partner’s answer'), json(d.lastResponse)) : null,
      h('p', { class: 'small' }, link(routes.log({ ...scope, direction: 'out' }), 'See these calls in the sync log')),
      outcome,
    ),
  );
}

async function retry(d, { button, outcome, statusBadge }, alive) {
  button.disabled = true;
  const scope = d.caseId ? { case: d.caseId } : d.customerId ? { customer: d.customerId } : {};
  const show = (tone, text) => {
    clear(outcome).append(h('span', { class: ['badge', `tone-${tone}`] }, tone === 'green' ? 'delivered' : tone === 'red' ? 'failed' : 'working'), ' ', text);
    outcome.dataset.tone = tone;
  };
  try {
    // Where the sync log stands now: the retried call is what comes after it.
    const before = await api(`/v1/sync-log${qs({ ...scope, direction: 'out', limit: 1 })}`);
    const after = before.data[0]?.id ?? 0;
    await api(`/v1/deliveries/${d.id}/retry`, { method: 'POST' });
    show('amber', 'Retry queued (202) — waiting for the partner’s answer…');
    mount(statusBadge, badge('pending', 'retrying'));
    const until = Date.now() + FOLLOW_MS;
    while (Date.now() < until && alive()) {
      await sleep(700);
      const log = await api(`/v1/sync-log${qs({ ...scope, direction: 'out', after, limit: 50 })}`);
      const mine = log.data.filter((x) => x.deliveryId === d.id);
      const last = mine[0];
      if (last && last.outcome === 'ok') {
        show('green', `${last.operation} → HTTP ${last.httpStatus}${last.latencyMs != null ? ` in ${last.latencyMs} ms` : ''}. ${last.summary ?? ''}`);
        button.textContent = 'Delivered';
        mount(statusBadge, badge('done', 'delivered'));
        button.closest('.delivery').dataset.state = 'delivered';
        return;
      }
      if (last && last.outcome === 'dead') {
        show('red', `${last.operation} → ${last.httpStatus ? `HTTP ${last.httpStatus}` : 'no answer'}: dead-lettered again. ${last.summary ?? ''}`);
        mount(statusBadge, badge('dead', 'dead-lettered'));
        button.disabled = false;
        return;
      }
      if (last) show('amber', `${last.operation} → ${last.httpStatus ? `HTTP ${last.httpStatus}` : 'no answer'}; the hub retries with backoff…`);
    }
    if (alive()) show('amber', 'Queued; no answer yet. The sync log will show it when it comes.');
  } catch (err) {
    show('red', err.status === 409 ? `Not retried: ${err.message}` : `Retry failed: ${err.message}`);
    button.disabled = false;
  }
}
