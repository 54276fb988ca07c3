/**
 * Guarantee 6, the guards themselves: the nesting check counts only structure (brackets inside
 * strings, escaped quotes and bytes that are not JSON do not fool it), and `storable` keeps every
 * payload storable in PostgreSQL without changing anything else.
 */
import fc from 'fast-check';
import { assertShallow, jsonNestingDepth, MAX_JSON_DEPTH, storable } from '../../../src/http/body-guard';
import { HttpError } from '../../../src/http/errors';

const depthOf = (v: unknown): number => (Array.isArray(v) ? 1 + Math.max(0, ...v.map(depthOf)) : v && typeof v === 'object' ? 1 + Math.max(0, ...Object.values(v).map(depthOf)) : 0);

describe('jsonNestingDepth', () => {
  it('counts arrays and objects, not brackets inside strings or after escaped quotes', () => {
    expect(jsonNestingDepth(Buffer.from('{"a":[1,{"b":[]}]}'))).toBe(4);
    expect(jsonNestingDepth(Buffer.from(JSON.stringify({ description: '['.repeat(500), note: 'say \\"[[[" and {{{' })))).toBe(1);
    expect(jsonNestingDepth(Buffer.from('id=tr_123&x=y'))).toBe(0);
    expect(jsonNestingDepth(Buffer.from(']]]]{'))).toBe(1);
  });

  it('agrees with the parsed depth of any JSON value', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 12 }), (v) => {
        expect(jsonNestingDepth(Buffer.from(JSON.stringify(v)))).toBe(depthOf(v));
      }),
      { numRuns: 300 },
    );
  });

  it('stops early on a hostile body and assertShallow refuses it with a 400', () => {
    const deep = Buffer.from('['.repeat(1_000_000));
    const started = Date.now();
    expect(jsonNestingDepth(deep, MAX_JSON_DEPTH)).toBe(MAX_JSON_DEPTH + 1);
    expect(Date.now() - started).toBeLessThan(50);
    expect(() => assertShallow(deep)).toThrow(HttpError);
    expect(() => assertShallow(Buffer.from('['.repeat(MAX_JSON_DEPTH) + ']'.repeat(MAX_JSON_DEPTH)))).not.toThrow();
  });
});

describe('storable', () => {
  it('replaces NUL and lone surrogates (which jsonb refuses) in values and keys, and nothing else', () => {
    const input = { 'a\u0000': ['x\u0000y', '\uD800', 'ok \uD83D\uDE00', 1, null, true], nested: { s: 'lo\uDC00ne' } };
    expect(storable(input)).toEqual({ 'a\uFFFD': ['x\uFFFDy', '\uFFFD', 'ok \uD83D\uDE00', 1, null, true], nested: { s: 'lo\uFFFDne' } });
  });

  it('keeps a __proto__ key as a key, without touching the prototype', () => {
    const parsed = JSON.parse('{"__proto__":{"polluted":true},"b":1}');
    const out = storable(parsed) as Record<string, unknown>;
    expect(Object.getPrototypeOf(out)).toBe(Object.prototype);
    expect(JSON.stringify(out)).toBe('{"__proto__":{"polluted":true},"b":1}');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('leaves any well-formed JSON value as it was', () => {
    fc.assert(
      fc.property(fc.jsonValue({ maxDepth: 6 }), (v) => {
        expect(storable(v)).toEqual(v);
      }),
      { numRuns: 300 },
    );
  });
});
