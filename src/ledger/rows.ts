/** Row shapes of the ledger tables, as the queries return them. */

export interface CustomerRow {
  id: string;
  merchant_id: string;
  provider: string;
  provider_ref: string;
  name: string | null;
  email: string | null;
  phone: string | null;
  address: any;
  country: string | null;
  locale: string | null;
  type: 'consumer' | 'business';
  mandate_status: string | null;
  subscription_status: string | null;
  last_failure_code: string | null;
  last_failure_reason: string | null;
  last_failure_at: Date | null;
  /** The merchant-level debtor (migration 009); the merchant's own id as last seen in PSP metadata. */
  debtor_id: string;
  merchant_ref: string | null;
}

export interface InvoiceRow {
  id: string;
  merchant_id: string;
  customer_id: string;
  provider: string;
  provider_ref: string;
  number: string | null;
  currency: string;
  amount_due: number;
  amount_paid: number;
  amount_collected: number;
  issued_at: Date | null;
  due_at: Date | null;
  subscription_ref: string | null;
  description: string | null;
  status: string;
  resolution: string | null;
  resolved_by: string | null;
  failure_code: string | null;
  failure_reason: string | null;
  failure_message: string | null;
  failure_retryable: boolean | null;
  failure_final: boolean;
  failure_count: number;
  first_failed_at: Date | null;
  last_failed_at: Date | null;
  handover_due_at: Date | null;
  payment_method: string | null;
  arrangement: any;
  case_id: string | null;
  last_event_at: Date | null;
  last_update_at: Date | null;
  last_update_seq: number | null;
  reminder_sent_at: Date | null;
  /** The merchant holds the hand-over until then (migration 011, src/policy/merchant-hold.ts); null: not held. */
  hold_until?: Date | null;
  /** PSP-paid + agency-collected beyond amount_due: the debtor's money (migration 008, src/ledger/owed-back.ts). */
  amount_owed_back?: number;
  created_at: Date;
  updated_at: Date;
}

export interface CaseRow {
  id: string;
  merchant_id: string;
  customer_id: string;
  partner_id: string;
  partner_ref: string | null;
  status: string;
  resolution: string | null;
  currency: string;
  opened_at: Date;
  submitted_at: Date | null;
  closed_at: Date | null;
  last_claim_at: Date;
  last_update_at: Date | null;
  last_update_seq: number | null;
  collection_costs: number | null;
  collection_costs_basis: string | null;
  debtor_id: string;
}

export interface ClaimRow {
  id: string;
  case_id: string;
  invoice_id: string;
  merchant_id: string;
  principal: number;
  currency: string;
  status: string;
  resolution: string | null;
  amount_collected: number;
  arrangement: any;
  sent_at: Date | null;
  last_update_at: Date | null;
  last_update_seq: number | null;
  /** Statutory costs on this claim (migration 010); null where no cost rule applies. */
  collection_costs?: number | string | null;
  collection_costs_vat?: number | string;
  collection_costs_basis?: string | null;
}
