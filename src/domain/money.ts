/**
 * Exact money conversions (contract §2): decimal strings and minor units, with each currency's
 * own exponent. No floating point anywhere on the way.
 */
import type { Money } from './types';

/** ISO 4217 minor-unit exponents that differ from 2. */
const EXPONENTS: Record<string, number> = {
  BIF: 0, CLP: 0, DJF: 0, GNF: 0, ISK: 0, JPY: 0, KMF: 0, KRW: 0, PYG: 0, RWF: 0, UGX: 0,
  UYI: 0, VND: 0, VUV: 0, XAF: 0, XOF: 0, XPF: 0,
  BHD: 3, IQD: 3, JOD: 3, KWD: 3, LYD: 3, OMR: 3, TND: 3,
};

export function currencyExponent(currency: string): number {
  return EXPONENTS[currency.toUpperCase()] ?? 2;
}

/** "12.50" EUR → 1250; "1000" JPY → 1000; "1.234" KWD → 1234. Throws on more decimals than the currency has. */
export function decimalToMinor(amount: string, currency: string): number {
  const exp = currencyExponent(currency);
  const m = /^(-)?(\d+)(?:\.(\d+))?$/.exec(amount.trim());
  if (!m) throw new Error(`not a decimal amount: ${JSON.stringify(amount)}`);
  const [, sign, whole, frac = ''] = m;
  if (frac.length > exp && /[^0]/.test(frac.slice(exp))) {
    throw new Error(`${amount} has more decimals than ${currency.toUpperCase()} allows (${exp})`);
  }
  const digits = whole + frac.slice(0, exp).padEnd(exp, '0');
  const value = Number(BigInt(digits));
  if (!Number.isSafeInteger(value)) throw new Error(`amount out of range: ${amount}`);
  return sign ? -value : value;
}

/** 1250 EUR → "12.50"; 1000 JPY → "1000". */
export function minorToDecimal(value: number, currency: string): string {
  const exp = currencyExponent(currency);
  const neg = value < 0;
  const digits = Math.abs(value).toString().padStart(exp + 1, '0');
  const out = exp === 0 ? digits : `${digits.slice(0, -exp)}.${digits.slice(-exp)}`;
  return neg ? `-${out}` : out;
}

export function money(value: number, currency: string): Money {
  return { value, currency: currency.toUpperCase() };
}

export function formatMoney(m: Money): string {
  return `${m.currency} ${minorToDecimal(m.value, m.currency)}`;
}
