/** Exact money conversions with each currency's own exponent (contract §2): never a float. */
import fc from 'fast-check';
import { decimalToMinor, minorToDecimal, currencyExponent, money, formatMoney } from '../../src/domain/money';

describe('currencyExponent', () => {
  it.each([
    ['EUR', 2],
    ['USD', 2],
    ['JPY', 0],
    ['KRW', 0],
    ['KWD', 3],
    ['BHD', 3],
    ['jpy', 0],
  ])('%s has %i decimals', (cur, exp) => {
    expect(currencyExponent(cur)).toBe(exp);
  });
});

describe('decimalToMinor', () => {
  it.each([
    ['12.50', 'EUR', 1250],
    ['12.5', 'EUR', 1250],
    ['12', 'EUR', 1200],
    ['0.01', 'EUR', 1],
    ['0.10', 'EUR', 10],
    ['12.340', 'EUR', 1234],
    [' 7.00 ', 'EUR', 700],
    ['1000', 'JPY', 1000],
    ['1000.0', 'JPY', 1000],
    ['1.234', 'KWD', 1234],
    ['1.2', 'KWD', 1200],
    ['0.001', 'KWD', 1],
    ['-5.00', 'EUR', -500],
    ['-0.05', 'EUR', -5],
    ['-1000', 'JPY', -1000],
    ['-1.234', 'KWD', -1234],
    ['0.1', 'eur', 10],
    // 0.1 + 0.2 in floating point is 0.30000000000000004; exact conversion has no such drift.
    ['0.30', 'EUR', 30],
    ['19.99', 'EUR', 1999],
    ['90071992547409.91', 'EUR', 9007199254740991],
  ])('%s %s is %i minor units', (amount, cur, minor) => {
    expect(decimalToMinor(amount, cur)).toBe(minor);
  });

  it.each([
    ['12.345', 'EUR'],
    ['0.001', 'EUR'],
    ['1000.5', 'JPY'],
    ['1.2345', 'KWD'],
  ])('refuses %s %s: more decimals than the currency has', (amount, cur) => {
    expect(() => decimalToMinor(amount, cur)).toThrow(/more decimals than/);
  });

  it.each(['', '1,50', '1e3', '12.', '.5', '+1.00', 'EUR 1.00', 'NaN', '1.2.3'])('refuses %j: not a decimal amount', (amount) => {
    expect(() => decimalToMinor(amount, 'EUR')).toThrow(/not a decimal amount/);
  });

  it('refuses an amount beyond the safe integer range instead of rounding it', () => {
    expect(() => decimalToMinor('90071992547409.92', 'EUR')).toThrow(/out of range/);
  });
});

describe('minorToDecimal', () => {
  it.each([
    [1250, 'EUR', '12.50'],
    [5, 'EUR', '0.05'],
    [0, 'EUR', '0.00'],
    [100, 'EUR', '1.00'],
    [1000, 'JPY', '1000'],
    [0, 'JPY', '0'],
    [1234, 'KWD', '1.234'],
    [1, 'KWD', '0.001'],
    [-500, 'EUR', '-5.00'],
    [-5, 'EUR', '-0.05'],
    [-1000, 'JPY', '-1000'],
    [-1, 'KWD', '-0.001'],
  ])('%i %s is %s', (minor, cur, text) => {
    expect(minorToDecimal(minor, cur)).toBe(text);
  });

  it('round-trips through decimalToMinor for any integer amount in EUR, JPY and KWD', () => {
    fc.assert(
      fc.property(fc.integer({ min: -Number.MAX_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }), fc.constantFrom('EUR', 'JPY', 'KWD', 'USD', 'BHD'), (v, cur) => {
        expect(decimalToMinor(minorToDecimal(v, cur), cur)).toBe(v);
      }),
    );
  });
});

describe('money and formatMoney', () => {
  it('upper-cases the currency and formats with its exponent', () => {
    expect(money(1250, 'eur')).toEqual({ value: 1250, currency: 'EUR' });
    expect(formatMoney({ value: 1250, currency: 'EUR' })).toBe('EUR 12.50');
    expect(formatMoney({ value: 1000, currency: 'JPY' })).toBe('JPY 1000');
    expect(formatMoney({ value: 1234, currency: 'KWD' })).toBe('KWD 1.234');
  });
});
