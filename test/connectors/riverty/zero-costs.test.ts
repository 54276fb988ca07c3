/**
 * A case with no statutory costs (value 0 with the reason, e.g. no evidence of the NL 14-day
 * letter; src/policy/letter-evidence.ts) sends Riverty no costs line: Riverty takes no zero amounts.
 */
import { toClaimRequest } from '../../../connectors/agency/riverty/normalize';
import { submission } from './helpers';

describe('riverty claim request: statutory costs', () => {
  it('sends the costs line when there are costs, and none when they are 0', () => {
    expect(toClaimRequest(submission).costs).toEqual([{ type: 'COLLECTION_COSTS', amount: '40.00', currency: 'EUR', description: 'WIK minimum (NL)' }]);
    const none = { ...submission, collectionCosts: { value: 0, currency: 'EUR', basis: 'no costs: no evidence of a compliant 14-day letter' } };
    expect(toClaimRequest(none).costs).toBeUndefined();
  });
});
