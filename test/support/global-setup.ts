/**
 * Jest's global set-up: is PostgreSQL (and Redis) reachable? Probed once, before any suite, so a
 * suite can declare its tests skipped at collection time (`servicesIt`, ./services.ts): outside CI
 * a test whose service is missing reports *skipped*, never *passed*; under CI=true it fails.
 */
import { postgresAvailable, redisAvailable } from './services';

export default async function globalSetup(): Promise<void> {
  process.env.TEST_POSTGRES_UP = (await postgresAvailable()) ? '1' : '0';
  process.env.TEST_REDIS_UP = (await redisAvailable()) ? '1' : '0';
}
