// The dashboard shell: sign-in, the header and navigation, and a hash router that renders one
// view at a time (each view may return a cleanup function, e.g. to stop polling).

import { api, session, ApiError } from './api.js';
import { h, clear, routes } from './dom.js';
import overview from './views/overview.js';
import syncLog from './views/sync-log.js';
import customer from './views/customer.js';
import invoice from './views/invoice.js';
import cases from './views/cases.js';
import deliveries from './views/deliveries.js';
import leakage from './views/leakage.js';

const ROUTES = [
  { re: /^\/(overview)?$/, view: overview, nav: 'overview', title: 'Overview' },
  { re: /^\/log$/, view: syncLog, nav: 'log', title: 'Sync log' },
  { re: /^\/customers\/([^/]+)$/, view: customer, nav: null, title: 'Customer' },
  { re: /^\/invoices\/([^/]+)$/, view: invoice, nav: null, title: 'Invoice' },
  { re: /^\/cases$/, view: cases, nav: 'cases', title: 'Cases' },
  { re: /^\/deliveries$/, view: deliveries, nav: 'deliveries', title: 'Deliveries' },
  { re: /^\/leakage$/, view: leakage, nav: 'leakage', title: 'Leakage report' },
];

const NAV = [
  ['overview', 'Overview', '#/overview'],
  ['log', 'Sync log', '#/log'],
  ['cases', 'Cases', '#/cases'],
  ['deliveries', 'Deliveries', '#/deliveries'],
  ['leakage', 'Leakage report', '#/leakage'],
];

const root = document.getElementById('app');
let me = null;
let cleanup = null;
let generation = 0;

function parseHash() {
  const raw = location.hash.replace(/^#/, '') || '/overview';
  const [path, query = ''] = raw.split('?');
  return { path, params: new URLSearchParams(query) };
}

export function navigate(hash) {
  if (location.hash === hash) render();
  else location.hash = hash;
}

function signInView(message) {
  document.title = 'Sign in · collection-hub';
  const input = h('textarea', { id: 'token', name: 'token', rows: 5, placeholder: 'eyJhbGciOiJIUzI1NiIs…', autocomplete: 'off', spellcheck: 'false', required: true });
  const error = h('p', { class: 'form-error', role: 'alert' }, message ?? '');
  const button = h('button', { type: 'submit', class: 'btn btn-primary' }, 'Sign in');
  const form = h(
    'form',
    {
      class: 'signin card',
      onsubmit: async (e) => {
        e.preventDefault();
        const token = input.value.trim();
        if (!token) return;
        button.disabled = true;
        error.textContent = '';
        try {
          me = await api('/v1/me', { token });
          session.set(token);
          if (!location.hash || location.hash === '#/signin') location.hash = '#/overview';
          render();
        } catch (err) {
          error.textContent = err instanceof ApiError && err.status === 401 ? `That token was not accepted: ${err.message}` : `Could not sign in: ${err.message}`;
        } finally {
          button.disabled = false;
        }
      },
    },
    h('div', { class: 'brand brand-large' }, h('span', { class: 'brand-mark' }, 'ch'), 'collection-hub'),
    h('h1', null, 'Merchant dashboard'),
    h('p', { class: 'muted' }, 'Paste the merchant token the hub issued for you (', h('code', null, 'npm run token -- <merchant>'), '). It is kept in this tab only.'),
    h('label', { for: 'token' }, 'Merchant token'),
    input,
    error,
    button,
  );
  clear(root).append(h('main', { class: 'signin-page' }, form));
  input.focus();
}

function header(active) {
  const search = h('input', { type: 'search', name: 'ref', placeholder: 'Customer or invoice id…', 'aria-label': 'Find a customer or invoice', autocomplete: 'off' });
  return h(
    'header',
    { class: 'topbar' },
    h('a', { class: 'brand', href: '#/overview' }, h('span', { class: 'brand-mark' }, 'ch'), 'collection-hub'),
    h('nav', { class: 'nav' }, NAV.map(([key, label, href]) => h('a', { href, class: key === active ? 'active' : null, 'aria-current': key === active ? 'page' : null, dataset: { nav: key } }, label))),
    h(
      'form',
      {
        class: 'search',
        role: 'search',
        onsubmit: async (e) => {
          e.preventDefault();
          const ref = search.value.trim();
          if (!ref) return;
          if (/^(in_|inv_)/.test(ref)) return navigate(routes.invoice(ref));
          if (/^(cus_|cust_)/.test(ref)) return navigate(routes.customer(ref));
          // Anything else: an invoice if there is one by that id, else a customer.
          try {
            await api(`/v1/invoices/${encodeURIComponent(ref)}`);
            navigate(routes.invoice(ref));
          } catch {
            navigate(routes.customer(ref));
          }
        },
      },
      search,
    ),
    h('div', { class: 'who' }, h('span', { class: 'who-name', title: `merchant ${me.id}` }, me.name), h('span', { class: 'who-id' }, me.id)),
    h('button', { class: 'btn btn-ghost', type: 'button', onclick: signOut }, 'Sign out'),
  );
}

function signOut() {
  session.clear();
  me = null;
  if (cleanup) cleanup();
  cleanup = null;
  location.hash = '';
  signInView();
}

async function render() {
  const gen = ++generation;
  if (cleanup) {
    try {
      cleanup();
    } catch {
      /* a view's cleanup must not stop navigation */
    }
    cleanup = null;
  }
  if (!session.get()) return signInView();
  if (!me) {
    try {
      me = await api('/v1/me');
    } catch (err) {
      return signInView(err.status === 401 ? 'Your session has ended; sign in again.' : `Could not reach the hub: ${err.message}`);
    }
    if (gen !== generation) return;
  }
  const { path, params } = parseHash();
  const route = ROUTES.find((r) => r.re.test(path));
  const view = h('main', { class: 'view', id: 'view' });
  clear(root).append(header(route?.nav), view);
  if (!route) {
    view.append(h('div', { class: 'alert' }, 'No such page. ', h('a', { href: '#/overview' }, 'Go to the overview')));
    return;
  }
  document.title = `${route.title} · ${me.name} · collection-hub`;
  const args = route.re.exec(path).slice(1).map((x) => (x === undefined ? x : decodeURIComponent(x)));
  const alive = () => gen === generation;
  try {
    const done = await route.view(view, { params, args, me, navigate, alive });
    if (typeof done === 'function') {
      if (alive()) cleanup = done;
      else done();
    }
  } catch (err) {
    if (!alive()) return;
    view.append(h('div', { class: 'alert alert-error', role: 'alert' }, err.status === 404 ? 'Not found for this merchant.' : `Something went wrong: ${err.message}`));
  }
}

// A token handed over in the address (`/dashboard/#token=…`, as the demo prints it) is moved
// into sessionStorage and taken out of the address at once.
(function takeTokenFromAddress() {
  const m = /^#token=([^&]+)/.exec(location.hash);
  if (!m) return;
  session.set(decodeURIComponent(m[1]));
  history.replaceState(null, '', `${location.pathname}${location.search}#/overview`);
})();

window.addEventListener('hashchange', render);
window.addEventListener('hub:signed-out', (e) => {
  me = null;
  if (cleanup) cleanup();
  cleanup = null;
  signInView(`Signed out: ${e.detail ?? 'the token is no longer accepted'}`);
});
render();
