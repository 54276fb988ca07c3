/**
 * Replay protection for partner pushes (issue 13, item 4): a push token is good for one push. Its
 * id (`jti`) is recorded in the same transaction as the updates it carries, so a token captured on
 * the way and sent again within its lifetime is refused, by every hub process alike (the database,
 * not a process's memory, remembers it). If the transaction fails, nothing was stored and the id is
 * not spent either: the agency's retry with the same token still goes through.
 */
import type { Sql } from '../store/db';

/** Record the token's id; false when it was used before (a replay). Expired ids of the partner are dropped on the way. */
/** When this process last cleared a partner's expired tokens: at most once a minute (issue 14: not a statement per push). */
const lastCleanup = new Map<string, number>();
const CLEANUP_EVERY_MS = 60_000;

export async function spendPushToken(sql: Sql, partnerId: string, token: { jti: string; expiresAt: Date }, now: Date): Promise<boolean> {
  // An expired token is refused by its signature check before it gets here, so its row only
  // takes room: cleared now and then, not on every push.
  if ((lastCleanup.get(partnerId) ?? -Infinity) + CLEANUP_EVERY_MS <= now.getTime()) {
    await sql.query(`DELETE FROM partner_push_tokens WHERE partner_id = $1 AND expires_at < $2`, [partnerId, now]);
    lastCleanup.set(partnerId, now.getTime());
  }
  const r = await sql.query(
    `INSERT INTO partner_push_tokens (partner_id, jti, expires_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING`,
    [partnerId, token.jti, token.expiresAt],
  );
  return (r.rowCount ?? 0) === 1;
}
