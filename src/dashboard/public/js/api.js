// The merchant API from the page: the token lives in sessionStorage (this tab only, gone when
// it closes) and goes with every call as `Authorization: Bearer`.

const KEY = 'collection-hub.merchant-token';

export const session = {
  get: () => sessionStorage.getItem(KEY),
  set: (t) => sessionStorage.setItem(KEY, t),
  clear: () => sessionStorage.removeItem(KEY),
};

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** Query string from an object, leaving out empty values. */
export function qs(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params ?? {})) if (v !== undefined && v !== null && v !== '') q.set(k, String(v));
  const s = q.toString();
  return s ? `?${s}` : '';
}

function headers(extra) {
  return { authorization: `Bearer ${session.get() ?? ''}`, ...extra };
}

async function failure(r, { signedIn = true } = {}) {
  const body = await r.json().catch(() => null);
  // The session's token refused: the session is over. (A token being tried at sign-in is not.)
  if (r.status === 401 && signedIn) {
    session.clear();
    window.dispatchEvent(new CustomEvent('hub:signed-out', { detail: body?.error?.message }));
  }
  return new ApiError(r.status, body?.error?.code, body?.error?.message ?? `${r.status} ${r.statusText}`);
}

export async function api(path, { method = 'GET', body, token } = {}) {
  const r = await fetch(path, {
    method,
    headers: token ? { authorization: `Bearer ${token}`, accept: 'application/json' } : headers({ accept: 'application/json', ...(body ? { 'content-type': 'application/json' } : {}) }),
    body: body ? JSON.stringify(body) : undefined,
    cache: 'no-store',
  });
  if (!r.ok) throw await failure(r, { signedIn: !token });
  return r.status === 204 ? null : r.json();
}

/** Fetch a file with the token and hand it to the browser as a download. */
export async function download(path) {
  const r = await fetch(path, { headers: headers(), cache: 'no-store' });
  if (!r.ok) throw await failure(r);
  const blob = await r.blob();
  const m = /filename="([^"]+)"/.exec(r.headers.get('content-disposition') ?? '');
  const a = document.createElement('a');
  a.href = URL.createObjectURL(blob);
  a.download = m ? m[1] : 'export.csv';
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
  return a.download;
}
