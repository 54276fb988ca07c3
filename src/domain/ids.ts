/** Opaque ids for records the hub creates (contract §2): a type prefix and 20 random base32 characters. */
import { randomBytes } from 'node:crypto';

const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';

/** Prefixes chosen not to collide with PSP ids (Stripe `cus_`/`in_`, Mollie `cst_`/`tr_`). */
export type IdPrefix = 'cust' | 'inv' | 'cse' | 'clm' | 'dbt';

export function newId(prefix: IdPrefix): string {
  const bytes = randomBytes(20);
  let s = '';
  for (const b of bytes) s += ALPHABET[b & 31];
  return `${prefix}_${s}`;
}
