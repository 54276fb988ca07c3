/**
 * mappings/agency/reference.yaml: the reference protocol speaks the canonical vocabulary, so the
 * table is the identity over every status an agency may report and every resolution reason —
 * written out in full, so nothing passes through unmapped.
 */
import { AGENCY_STATUSES, RESOLUTION_REASONS } from '../../../src/domain/types';
import { normalizeUpdate, UnmappedValueError } from '../../../connectors/agency/reference/normalize';
import { mapping, rawUpdate } from './helpers';

describe('reference agency mapping', () => {
  it('is for the reference connector', () => {
    expect(mapping.partnerConnector).toBe('reference');
  });

  it('maps every agency status to itself, and nothing else', () => {
    expect(mapping.statuses).toEqual(Object.fromEntries(AGENCY_STATUSES.map((s) => [s, s])));
    expect(mapping.statuses).not.toHaveProperty('pending_handover');
  });

  it('maps every resolution reason to itself, and nothing else', () => {
    expect(mapping.reasons).toEqual(Object.fromEntries(RESOLUTION_REASONS.map((r) => [r, r])));
  });
});

describe('normalizeUpdate', () => {
  it('does not resolve raw values through the object prototype', () => {
    expect(() => normalizeUpdate(rawUpdate({ status: 'constructor' }), mapping)).toThrow(UnmappedValueError);
    expect(() => normalizeUpdate(rawUpdate({ status: 'paid', reason: 'toString' }), mapping)).toThrow(/reason "toString"/);
  });

  it('maps through whatever table it is given (another agency = another file)', () => {
    const other = { partnerConnector: 'other', statuses: { OPEN: 'in_collection' as const }, reasons: { PIF: 'paid_in_full' as const } };
    expect(normalizeUpdate(rawUpdate({ status: 'OPEN', reason: 'PIF' }), other)).toMatchObject({ status: 'in_collection', reason: 'paid_in_full' });
  });

  it('leaves out optional fields the agency sent as null', () => {
    const update = normalizeUpdate({ ...rawUpdate(), reason: null, amountCollected: null, arrangement: null, note: null }, mapping);
    expect(Object.keys(update).sort()).toEqual(['caseId', 'caseReference', 'claimReference', 'id', 'occurredAt', 'seq', 'status']);
  });
});
