// A timeline from the API's `timeline` (status_history): PSP events, hand-over, each agency
// update, payments and instalments, oldest first, each with its source and reason.

import { h, time, badge, words, link, routes, fmtMoney } from '../dom.js';

const ENTITY_LABEL = { customer: 'Customer', invoice: 'Invoice', case: 'Case', claim: 'Claim' };

function sourceLabel(source) {
  if (!source) return '';
  return words(String(source).replace(/^partner:/, 'agency: ').replace(/^psp:/, 'PSP: '));
}

function detailText(d) {
  if (!d || typeof d !== 'object') return d ? String(d) : '';
  const parts = [];
  for (const [k, v] of Object.entries(d)) {
    if (v === null || v === undefined || v === '') continue;
    if (v && typeof v === 'object' && 'value' in v && 'currency' in v) parts.push(`${words(k)} ${fmtMoney(v)}`);
    else if (typeof v === 'object') parts.push(`${words(k)} ${JSON.stringify(v)}`);
    else parts.push(`${words(k)} ${v}`);
  }
  return parts.join(' · ');
}

export function timeline(entries, { invoiceLinks = true } = {}) {
  if (!entries?.length) return h('p', { class: 'muted' }, 'Nothing has happened yet.');
  return h(
    'ol',
    { class: 'timeline' },
    entries.map((e) =>
      h(
        'li',
        { class: `tl tl-${e.entity}`, dataset: { entity: e.entity, status: e.status } },
        h('div', { class: 'tl-time' }, time(e.at)),
        h('div', { class: 'tl-dot', 'aria-hidden': 'true' }),
        h(
          'div',
          { class: 'tl-body' },
          h(
            'div',
            { class: 'tl-head' },
            h('span', { class: 'tl-entity' }, ENTITY_LABEL[e.entity] ?? e.entity),
            e.entity === 'invoice' && invoiceLinks ? link(routes.invoice(e.id), e.id) : e.entity === 'case' ? link(routes.log({ case: e.id }), e.id) : h('span', { class: 'muted' }, e.id),
            badge(e.status),
            e.reason ? h('span', { class: 'tl-reason' }, words(e.reason)) : null,
          ),
          h('div', { class: 'tl-meta' }, sourceLabel(e.source), e.detail ? ` — ${detailText(e.detail)}` : ''),
        ),
      ),
    ),
  );
}
