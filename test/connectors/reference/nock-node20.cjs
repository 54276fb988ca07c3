/*
 * Loads nock in the test process's own realm, outside Jest's module registry. Reason: the
 * installed nock 15 is ESM-only and its @mswjs/interceptors 0.44 needs Node 22
 * (Promise.withResolvers). On Node 20, Jest's CommonJS loader cannot require it, but Node itself
 * can (require(esm), Node >= 20.19) once the ES2024 Promise.withResolvers exists.
 * Remove this file when the repo runs on Node 22+ or pins a CommonJS nock (14.x).
 */
'use strict';

if (typeof Promise.withResolvers !== 'function') {
  // ES2024 Promise.withResolvers, exactly as specified; defined only where the runtime lacks it.
  Object.defineProperty(Promise, 'withResolvers', {
    configurable: true,
    writable: true,
    value: function withResolvers() {
      let resolve;
      let reject;
      const promise = new this((res, rej) => {
        resolve = res;
        reject = rej;
      });
      return { promise, resolve, reject };
    },
  });
}

const mod = require('nock');

/**
 * A network error for `replyWithError`. It must be an Error of this realm: nock checks
 * `instanceof Error`, and an Error made inside a Jest sandbox is of another realm, which
 * leaves the request hanging instead of failing.
 */
function networkError(code, message) {
  return Object.assign(new Error(message), { code });
}

module.exports = { nock: mod.default || mod, networkError };
