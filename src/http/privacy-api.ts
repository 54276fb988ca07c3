/**
 * The merchant's data-protection calls (issue 13, item 6):
 *
 *   POST /v1/customers/:ref/erase   erase this customer's personal data (GDPR art. 17)
 *
 * 200 with what was purged; 409 `legal_hold` with the invoices that keep the data while the hub
 * still pursues them (src/privacy/erasure.ts); 404 for a customer of another merchant or none.
 * Tenant-scoped and rate-limited like the rest of the merchant API.
 */
import express, { type RequestHandler, type Router } from 'express';
import type { HubContext } from '../context';
import type { CustomerRow } from '../ledger/rows';
import { eraseCustomer } from '../privacy/erasure';
import { merchantAuthOptions, requireMerchant } from './merchant-auth';
import { HttpError, errorBody, notFound } from './errors';

export interface PrivacyApiOptions {
  perMerchantLimit?: RequestHandler;
}

const MAX_REF_LENGTH = 256;

export function privacyApiRouter(ctx: HubContext, opts: PrivacyApiOptions = {}): Router {
  const router = express.Router();
  const auth = requireMerchant(merchantAuthOptions(ctx));
  const noLimit: RequestHandler = (_req, _res, next) => next();

  router.post('/v1/customers/:ref/erase', auth, opts.perMerchantLimit ?? noLimit, async (req, res) => {
    const merchantId = req.merchantId!;
    const ref = String(req.params.ref);
    if (ref.length > MAX_REF_LENGTH || /[\u0000-\u001f\u007f]/.test(ref)) throw new HttpError(400, 'bad_request', 'ref is not a valid customer reference');
    const now = ctx.clock.now();
    const outcome = await ctx.commit(async (sql) => {
      const c = (await sql.query<CustomerRow>(`SELECT * FROM customers WHERE merchant_id = $1 AND (id = $2 OR provider_ref = $2) ORDER BY created_at LIMIT 1`, [merchantId, ref])).rows[0];
      if (!c) return null;
      return eraseCustomer(sql, c, now, 'merchant');
    });
    if (!outcome) throw notFound(`customer ${ref}`);
    if (!outcome.erased) {
      ctx.logger.info('erasure refused: legal hold', { merchantId, customerId: outcome.customerId, holds: outcome.holds.length });
      res.status(409).json({
        ...errorBody('legal_hold', `customer ${ref} still owes invoices the hub is pursuing; their data is kept until these are resolved or withdrawn (GDPR art. 17(3)(e))`),
        holds: outcome.holds,
      });
      return;
    }
    ctx.logger.info('personal data erased (GDPR art. 17)', { merchantId, customerId: outcome.customerId, ...outcome.purged });
    res.status(200).json({ erased: true, customer: outcome.customerId, purged: outcome.purged });
  });
  return router;
}
