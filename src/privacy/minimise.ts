/**
 * What personal data may leave the hub for a collection partner (issue 13, item 6; GDPR art.
 * 5(1)(c) data minimisation).
 *
 * - A partner that declares no `debtorFields` gets DEFAULT_DEBTOR_FIELDS besides the protocol's
 *   required reference, type and name: the postal address, country and language an agency needs
 *   to write to the debtor (the collection letters are post), not the e-mail or phone number,
 *   which a partner must ask for by name.
 * - Free text that goes to a partner (the debtor's name and address lines, an invoice's number
 *   and description, the merchant's hold and withdraw reasons) is scrubbed of card numbers, IBANs
 *   and secrets: a merchant who types "customer paid from NL91ABNA0417164300" into a reason does
 *   not send that account to the agency.
 */
import { redactText } from '../observability/redact';

export const DEFAULT_DEBTOR_FIELDS = ['address', 'country', 'locale'] as const;

/** Card numbers, IBANs and secrets masked; anything else (names, dates, amounts) left as written. */
export function scrubFreeText(text: string): string;
export function scrubFreeText(text: string | null | undefined): string | undefined;
export function scrubFreeText(text: string | null | undefined): string | undefined {
  return text == null ? undefined : redactText(text);
}

/** Every string of a small object (an address) scrubbed. */
export function scrubStrings<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, typeof v === 'string' ? redactText(v) : v])) as T;
}
