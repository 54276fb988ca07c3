/**
 * Realistic Mollie objects and webhook bodies for tests and the demo.
 *
 * Payments are shaped like `GET /v2/payments/:id` answers — the failed recurring SEPA payment of
 * shared/reference/psp-webhooks.md §2.6 is the model; field names per @mollie/api-client 4.6
 * (dist/types/data/payments/data.d.ts). The classic webhook body is Mollie's documented
 * `id=tr_…` form (§2.6); the next-gen event follows the envelope of §2.4 and is signed as Mollie
 * signs it: `sha256=` + hex HMAC-SHA256 of the raw body with the signing secret.
 */
import crypto from 'node:crypto';

type Json = Record<string, any>;

let seq = 0;
/** A Mollie-looking id with the given prefix (`tr`, `cst`, `chb`, …), unique in this process. */
export function mollieId(prefix: string): string {
  seq++;
  return `${prefix}_${Date.now().toString(36)}${seq.toString(36).padStart(4, '0')}${Math.random().toString(36).slice(2, 6)}`;
}

export interface PaymentFacts {
  id?: string;
  status: 'open' | 'pending' | 'authorized' | 'paid' | 'failed' | 'expired' | 'canceled';
  /** Decimal string as Mollie sends it: "49.00", "1000" (JPY), "12.345" (KWD). */
  value?: string;
  currency?: string;
  customerId?: string | null;
  description?: string;
  metadata?: unknown;
  /** When the payment was created (ISO); the status timestamp is one day later unless given. */
  createdAt?: string;
  statusAt?: string;
  locale?: string | null;
  countryCode?: string | null;
  billingAddress?: Json | null;
}

const DAY = 86_400_000;
const base = (f: PaymentFacts, extra: Json): Json => {
  const id = f.id ?? mollieId('tr');
  const createdAt = f.createdAt ?? new Date(Date.now() - 3 * DAY).toISOString().replace('Z', '+00:00').replace(/\.\d{3}/, '');
  const statusAt = f.statusAt ?? new Date(Date.parse(createdAt) + DAY).toISOString().replace('Z', '+00:00').replace(/\.\d{3}/, '');
  const stamps: Json = {};
  if (f.status === 'failed') stamps.failedAt = statusAt;
  if (f.status === 'expired') stamps.expiredAt = statusAt;
  if (f.status === 'canceled') stamps.canceledAt = statusAt;
  if (f.status === 'paid') stamps.paidAt = statusAt;
  if (f.status === 'authorized') stamps.authorizedAt = statusAt;
  const customerId = f.customerId === undefined ? undefined : f.customerId;
  const payment: Json = {
    resource: 'payment',
    id,
    mode: 'test',
    createdAt,
    status: f.status,
    ...stamps,
    isCancelable: f.status === 'open',
    amount: { currency: f.currency ?? 'EUR', value: f.value ?? '49.00' },
    description: f.description ?? 'Subscription June 2024 - ACME-0042',
    metadata: f.metadata === undefined ? null : f.metadata,
    profileId: 'pfl_QkEhN94Ba',
    redirectUrl: null,
    webhookUrl: 'https://collector.example.com/webhooks/mollie',
    ...(f.locale ? { locale: f.locale } : {}),
    ...(f.countryCode ? { countryCode: f.countryCode } : {}),
    ...(f.billingAddress ? { billingAddress: f.billingAddress } : {}),
    ...(customerId ? { customerId } : {}),
    ...extra,
    _links: {
      self: { href: `https://api.mollie.com/v2/payments/${id}`, type: 'application/hal+json' },
      dashboard: { href: `https://www.mollie.com/dashboard/org_12345678/payments/${id}`, type: 'text/html' },
      ...(customerId ? { customer: { href: `https://api.mollie.com/v2/customers/${customerId}`, type: 'application/hal+json' } } : {}),
      ...(extra._links ?? {}),
    },
  };
  return payment;
};

export const molliePayments = {
  /**
   * A recurring SEPA Direct Debit of a subscription (§2.6): `method: directdebit`,
   * `sequenceType: recurring`, mandate and subscription ids; when failed, the bank's R-code in
   * `details.bankReasonCode` (AM04 by default) and its text in `details.bankReason`.
   */
  sepaRecurring(f: PaymentFacts & { bankReasonCode?: string | null; bankReason?: string; mandateId?: string; subscriptionId?: string }): Json {
    const customerId = f.customerId === undefined ? mollieId('cst') : f.customerId;
    const mandateId = f.mandateId ?? mollieId('mdt');
    const subscriptionId = f.subscriptionId ?? mollieId('sub');
    const failed = f.status === 'failed';
    const code = f.bankReasonCode === undefined ? 'AM04' : f.bankReasonCode;
    return base(
      { ...f, customerId, metadata: f.metadata === undefined ? { invoiceId: 'ACME-0042' } : f.metadata },
      {
        method: 'directdebit',
        sequenceType: 'recurring',
        mandateId,
        subscriptionId,
        details: {
          transferReference: 'SD12-3456-7890-1234',
          creditorIdentifier: 'NL08ZZZ502057730000',
          consumerName: 'Jan Jansen',
          consumerAccount: 'NL55INGB0000000000',
          consumerBic: 'INGBNL2A',
          dueDate: '2024-06-03',
          signatureDate: '2024-01-15',
          ...(failed && code ? { bankReasonCode: code, bankReason: f.bankReason ?? BANK_REASONS[code] ?? 'Rejected by the bank' } : {}),
          endToEndIdentifier: 'E2E-ACME-0042',
          mandateReference: 'ACME-MANDATE-7',
          batchReference: 'BATCH-20240603',
          fileReference: 'FILE-20240603',
        },
        _links: {
          ...(customerId
            ? {
                mandate: { href: `https://api.mollie.com/v2/customers/${customerId}/mandates/${mandateId}`, type: 'application/hal+json' },
                subscription: { href: `https://api.mollie.com/v2/customers/${customerId}/subscriptions/${subscriptionId}`, type: 'application/hal+json' },
              }
            : {}),
        },
      },
    );
  },

  /** A credit card payment (recurring on a stored card by default); when failed, `details.failureReason`. */
  card(f: PaymentFacts & { failureReason?: string | null; failureMessage?: string; sequenceType?: 'oneoff' | 'first' | 'recurring' }): Json {
    const failed = f.status === 'failed';
    return base(f, {
      method: 'creditcard',
      sequenceType: f.sequenceType ?? 'recurring',
      ...(f.customerId ? { mandateId: mollieId('mdt') } : {}),
      details: {
        cardNumber: '6787',
        cardHolder: 'J. Jansen',
        cardAudience: 'consumer',
        cardLabel: 'Mastercard',
        cardCountryCode: 'NL',
        cardSecurity: 'normal',
        feeRegion: 'intra-eu',
        ...(failed && f.failureReason ? { failureReason: f.failureReason, failureMessage: f.failureMessage ?? `Payment failed: ${f.failureReason}` } : {}),
      },
    });
  },

  /** An iDEAL checkout (one-off): open until paid, expired or canceled by the customer. */
  ideal(f: PaymentFacts): Json {
    return base(f, {
      method: 'ideal',
      sequenceType: 'oneoff',
      details: f.status === 'paid' ? { consumerName: 'Jan Jansen', consumerAccount: 'NL55INGB0000000000', consumerBic: 'INGBNL2A' } : null,
      _links: f.status === 'open' ? { checkout: { href: 'https://www.mollie.com/checkout/select-issuer/ideal/fake', type: 'text/html' } } : {},
    });
  },
};

const BANK_REASONS: Record<string, string> = {
  AM04: 'Insufficient funds',
  AC04: 'Account closed',
  MD01: 'No mandate',
  MS02: 'Refusal by the debtor',
  MS03: 'Reason not specified',
};

/** `GET /v2/customers/:id` (customers/Customer.d.ts). */
export function mollieCustomer(f: { id: string; name?: string | null; email?: string | null; locale?: string | null; metadata?: unknown }): Json {
  return {
    resource: 'customer',
    id: f.id,
    mode: 'test',
    name: f.name === undefined ? 'Jan Jansen' : f.name,
    email: f.email === undefined ? 'jan@example.nl' : f.email,
    locale: f.locale === undefined ? 'nl_NL' : f.locale,
    metadata: f.metadata ?? null,
    createdAt: '2024-01-15T10:00:00+00:00',
    _links: {
      self: { href: `https://api.mollie.com/v2/customers/${f.id}`, type: 'application/hal+json' },
      dashboard: { href: `https://www.mollie.com/dashboard/org_12345678/customers/${f.id}`, type: 'text/html' },
    },
  };
}

/** A chargeback of a payment (chargebacks/Chargeback.d.ts; psp-webhooks.md §2.5). */
export function mollieChargeback(f: { paymentId: string; id?: string; value: string; currency?: string; createdAt?: string; reversedAt?: string | null; reasonCode?: string; reasonDescription?: string }): Json {
  const id = f.id ?? mollieId('chb');
  const currency = f.currency ?? 'EUR';
  return {
    resource: 'chargeback',
    id,
    amount: { currency, value: f.value },
    settlementAmount: { currency, value: `-${f.value}` },
    createdAt: f.createdAt ?? new Date().toISOString().replace(/\.\d{3}Z$/, '+00:00'),
    reversedAt: f.reversedAt ?? null,
    ...(f.reasonCode ? { reason: { code: f.reasonCode, description: f.reasonDescription ?? f.reasonCode } } : {}),
    paymentId: f.paymentId,
    _links: {
      self: { href: `https://api.mollie.com/v2/payments/${f.paymentId}/chargebacks/${id}`, type: 'application/hal+json' },
      payment: { href: `https://api.mollie.com/v2/payments/${f.paymentId}`, type: 'application/hal+json' },
    },
  };
}

/** A refund of a payment (refunds/data.d.ts). */
export function mollieRefund(f: { paymentId: string; id?: string; value: string; currency?: string; status?: string; createdAt?: string }): Json {
  const id = f.id ?? mollieId('re');
  return {
    resource: 'refund',
    id,
    amount: { currency: f.currency ?? 'EUR', value: f.value },
    status: f.status ?? 'refunded',
    createdAt: f.createdAt ?? new Date().toISOString().replace(/\.\d{3}Z$/, '+00:00'),
    description: 'Refund',
    paymentId: f.paymentId,
    _links: {
      self: { href: `https://api.mollie.com/v2/payments/${f.paymentId}/refunds/${id}`, type: 'application/hal+json' },
      payment: { href: `https://api.mollie.com/v2/payments/${f.paymentId}`, type: 'application/hal+json' },
    },
  };
}

/** The classic webhook body Mollie posts (`application/x-www-form-urlencoded`). */
export function classicBody(id: string): string {
  return new URLSearchParams({ id }).toString();
}

/** A next-gen webhook event (§2.4) about a payment; `entity` adds the snapshot (`_embedded.entity`). */
export function nextGenEvent(f: { type: string; entityId: string; id?: string; createdAt?: string; entity?: Json }): Json {
  return {
    resource: 'event',
    id: f.id ?? mollieId('event'),
    type: f.type,
    entityId: f.entityId,
    createdAt: f.createdAt ?? new Date().toISOString(),
    ...(f.entity ? { _embedded: { entity: f.entity } } : {}),
    _links: {
      documentation: { href: 'https://docs.mollie.com/reference/webhooks-new', type: 'text/html' },
    },
  };
}

/** `X-Mollie-Signature` for a raw body: `sha256=` + hex HMAC-SHA256 with the signing secret (§2.4). */
export function mollieSignatureHeader(rawBody: string | Buffer, secret: string): string {
  return `sha256=${crypto.createHmac('sha256', secret).update(rawBody).digest('hex')}`;
}

/** A next-gen event serialized and signed: the exact bytes to post and the header for them. */
export function signMollie(event: unknown, secret: string): { body: string; header: string } {
  const body = JSON.stringify(event);
  return { body, header: mollieSignatureHeader(body, secret) };
}
