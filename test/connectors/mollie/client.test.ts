/**
 * The SDK client for one merchant (connectors/psp/mollie/client.ts): the `http:` apiBase path must
 * leave Node's https module as it found it, and error texts never carry an API key.
 */
import http from 'node:http';
import https from 'node:https';
import { classify, createMollieSdkClient, MollieNotFound, MollieRejected, MollieRetryable, redact } from '../../../connectors/psp/mollie/client';
import { Permanent } from '../../../src/pipeline/errors';

describe('createMollieSdkClient', () => {
  it('leaves https.Agent untouched after building a client for an http: apiBase', () => {
    const before = https.Agent;
    createMollieSdkClient({ apiKey: 'test_abc123', apiBase: 'http://127.0.0.1:9/v2/' });
    expect(https.Agent).toBe(before);
    expect(https.Agent).not.toBe(http.Agent);
  });

  it('builds a client for the default endpoint and for an https sandbox without swapping anything', () => {
    const before = https.Agent;
    expect(createMollieSdkClient({ apiKey: 'live_abc123' }).payments).toBeDefined();
    expect(createMollieSdkClient({ apiKey: 'test_abc123', apiBase: 'https://sandbox.example.test/v2/' }).payments).toBeDefined();
    expect(https.Agent).toBe(before);
  });
});

describe('classify (the SDK ApiError → our error taxonomy)', () => {
  const apiError = (statusCode: number | undefined, message = 'x') => Object.assign(new Error(message), { name: 'ApiError', statusCode, title: 'T' });

  it.each([
    [404, MollieNotFound],
    [410, MollieNotFound],
    [undefined, MollieRetryable],
    [429, MollieRetryable],
    [500, MollieRetryable],
    [503, MollieRetryable],
    [400, MollieRejected],
    [401, MollieRejected],
    [403, MollieRejected],
    [422, MollieRejected],
  ])('status %s → %p', (status, type) => {
    expect(classify('payment tr_x', apiError(status))).toBeInstanceOf(type);
  });

  it('only rejections are Permanent (dead-lettered); retryable ones are plain Errors', () => {
    expect(classify('p', apiError(401))).toBeInstanceOf(Permanent);
    expect(classify('p', apiError(500))).not.toBeInstanceOf(Permanent);
  });

  it('passes errors that are not the SDK’s through unchanged', () => {
    const bug = new TypeError('boom');
    expect(classify('p', bug)).toBe(bug);
  });

  it('redacts the configured key and anything shaped like a Mollie key', () => {
    const key = 'live_SECRETkey0123456789abcdef';
    expect(classify('p', apiError(401, `Invalid key ${key}`), key).message).not.toContain(key);
    expect(redact('token access_abcdefghij and test_0123456789 seen')).toBe('token [redacted] and [redacted] seen');
  });
});
