/** storableJson (src/http/body-guard.ts): JSON.stringify(storable(x)), rebuilding x only when needed. */
import { storable, storableJson } from '../../src/http/body-guard';

describe('storableJson', () => {
  it('is the JSON text of the value when nothing in it needs changing', () => {
    const v = { id: 'evt_1', data: { object: { amount: 4200, name: 'Zoë 😀', note: 'a\\u0000b is text', list: [1, null, true] } } };
    expect(storableJson(v)).toBe(JSON.stringify(v));
  });

  it('replaces NUL and lone surrogates, in values and in keys, like storable', () => {
    const v = { a: 'x\u0000y', ['k\u0000']: ['\uD800', 'ok \uDC00'], pair: '😀', nested: { deep: ['\uDBFF!'] } };
    const text = storableJson(v);
    expect(text).toBe(JSON.stringify(storable(v)));
    expect(text).not.toMatch(/\\u0000|\\ud[89a-f]/i);
    expect(JSON.parse(text)).toEqual({ a: 'x\uFFFDy', 'k\uFFFD': ['\uFFFD', 'ok \uFFFD'], pair: '😀', nested: { deep: ['\uFFFD!'] } });
  });
});
