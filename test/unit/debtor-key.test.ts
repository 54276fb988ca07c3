/**
 * Debtor identity (issue 12, hole 3) as pure functions: which key makes one debtor of a
 * merchant's customers at several PSPs (src/ledger/debtor-key.ts), when a customer's link moves,
 * and how each PSP's metadata yields the merchant's own customer id (connectors/psp/merchant-ref.ts).
 */
import { decideDebtorLink, normaliseEmail, resolveDebtorKey } from '../../src/ledger/debtor-key';
import { adyenMetadata, merchantRefOf, DEFAULT_MERCHANT_REF_KEYS } from '../../connectors/psp/merchant-ref';
import { policySchema } from '../../src/config/schema';

const off = { debtorIdentity: { metadataKeys: ['customer_id'], matchEmail: false } };
const on = { debtorIdentity: { metadataKeys: ['customer_id'], matchEmail: true } };

describe('resolveDebtorKey', () => {
  it("takes the merchant's own customer id first, trimmed, even when an e-mail match is allowed", () => {
    expect(resolveDebtorKey({ merchantRef: ' C-42 ', email: 'jan@example.nl' }, on)).toEqual({ kind: 'merchant_ref', value: 'C-42' });
    expect(resolveDebtorKey({ merchantRef: 'C-42' }, off)).toEqual({ kind: 'merchant_ref', value: 'C-42' });
  });

  it('never matches on e-mail unless the merchant opted in (the default is off)', () => {
    expect(resolveDebtorKey({ email: 'jan@example.nl' }, off)).toEqual({ kind: 'psp_customer' });
    expect(resolveDebtorKey({ email: 'jan@example.nl' }, {})).toEqual({ kind: 'psp_customer' });
    expect(policySchema.parse({}).debtorIdentity?.matchEmail ?? false).toBe(false);
  });

  it('with the opt-in, matches on the normalised e-mail when there is no merchant id', () => {
    expect(resolveDebtorKey({ merchantRef: '  ', email: ' Jan@Example.NL ' }, on)).toEqual({ kind: 'email', value: 'jan@example.nl' });
  });

  it('falls back to the PSP customer alone when nothing identifies the person', () => {
    expect(resolveDebtorKey({}, on)).toEqual({ kind: 'psp_customer' });
    expect(resolveDebtorKey({ email: 'not an address' }, on)).toEqual({ kind: 'psp_customer' });
  });
});

describe('normaliseEmail', () => {
  it('lower-cases and trims, and keeps +tags and dots (they may be other mailboxes)', () => {
    expect(normaliseEmail(' Jan.Jansen+gym@Example.NL ')).toBe('jan.jansen+gym@example.nl');
    expect(normaliseEmail('jan@@example.nl')).toBeNull();
    expect(normaliseEmail(null)).toBeNull();
  });
});

describe('decideDebtorLink', () => {
  const unkeyed = { id: 'dbt_own', externalRef: null, emailNorm: null };
  const keyed = { id: 'dbt_c42', externalRef: 'C-42', emailNorm: null };
  const byEmail = { id: 'dbt_mail', externalRef: null, emailNorm: 'jan@example.nl' };
  const ref = (value: string) => ({ kind: 'merchant_ref' as const, value });
  const email = (value: string) => ({ kind: 'email' as const, value });

  it('gives a new customer without a key a debtor of its own, and one with a key the debtor of that key', () => {
    expect(decideDebtorLink({ kind: 'psp_customer' }, null, false)).toEqual({ action: 'new_own' });
    expect(decideDebtorLink(ref('C-42'), null, true)).toEqual({ action: 'find_or_create' });
    expect(decideDebtorLink(email('jan@example.nl'), null, false)).toEqual({ action: 'find_or_create' });
  });

  it("lets a customer's own debtor take the merchant id when nobody has it, or joins the debtor that has it", () => {
    expect(decideDebtorLink(ref('C-42'), unkeyed, false)).toEqual({ action: 'adopt' });
    expect(decideDebtorLink(ref('C-42'), unkeyed, true)).toEqual({ action: 'find_or_create' });
    expect(decideDebtorLink(ref('C-42'), byEmail, true)).toEqual({ action: 'find_or_create' });
  });

  it("never moves a customer away from a debtor known by the merchant's id", () => {
    expect(decideDebtorLink({ kind: 'psp_customer' }, keyed, false)).toEqual({ action: 'keep' });
    expect(decideDebtorLink(email('jan@example.nl'), keyed, true)).toEqual({ action: 'keep' });
    expect(decideDebtorLink(ref('C-43'), keyed, true)).toEqual({ action: 'keep' });
    expect(decideDebtorLink(email('other@example.nl'), byEmail, true)).toEqual({ action: 'keep' });
  });
});

describe('merchantRefOf (every PSP connector)', () => {
  it('reads the first default key in the first metadata map that has one: the customer before the payment', () => {
    expect(DEFAULT_MERCHANT_REF_KEYS).toEqual(['customer_id', 'merchantCustomerId']);
    expect(merchantRefOf([{ customer_id: 'C-1' }, { customer_id: 'C-2' }])).toBe('C-1');
    expect(merchantRefOf([null, { merchantCustomerId: 'C-2' }])).toBe('C-2');
    expect(merchantRefOf([{ other: 'x' }, undefined, 'not a map', ['C-3']])).toBeUndefined();
  });

  it("uses the merchant's configured key names, numbers as strings, and skips empty or overlong values", () => {
    expect(merchantRefOf([{ customer_id: 'C-1', crmId: 77 }], ['crmId'])).toBe('77');
    expect(merchantRefOf([{ customer_id: '  ' }, { customer_id: 'x'.repeat(201) }])).toBeUndefined();
  });

  it("reads Adyen's metadata from additionalData's `metadata.<key>` entries", () => {
    expect(merchantRefOf([adyenMetadata({ shopperReference: 'S-1', 'metadata.customer_id': 'C-9' })])).toBe('C-9');
    expect(adyenMetadata(undefined)).toEqual({});
  });
});
