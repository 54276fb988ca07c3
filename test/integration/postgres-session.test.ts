/**
 * Every PostgreSQL connection of the hub starts with jit = off (issue 14; src/store/postgres.ts):
 * sent in the startup packet, on pooled queries and in transactions alike, and added to an
 * `options` the DATABASE_URL already carries instead of replacing it.
 */
import { createPostgres, SESSION_OPTIONS, withSessionOptions } from '../../src/store/postgres';
import { createTestDatabase, postgresAvailable, servicesIt } from '../support/services';

describe('withSessionOptions', () => {
  it('adds jit=off to a URL, keeping its other parameters and an options it already has', () => {
    expect(SESSION_OPTIONS).toBe('-c jit=off');
    const plain = new URL(withSessionOptions('postgres://hub:p%40ss@db.internal:5432/hub'));
    expect(plain.searchParams.get('options')).toBe('-c jit=off');
    expect(plain.password).toBe('p%40ss');
    const given = new URL(withSessionOptions('postgres://hub@db/hub?sslmode=require&options=-c%20statement_timeout%3D5s'));
    expect(given.searchParams.get('options')).toBe('-c statement_timeout=5s -c jit=off');
    expect(given.searchParams.get('sslmode')).toBe('require');
  });

  it('leaves a string that is not a URL to the pool config (which carries the same options)', () => {
    expect(withSessionOptions('/var/run/postgresql hub')).toBe('/var/run/postgresql hub');
  });
});

describe('a hub connection to PostgreSQL', () => {
  let available = true;
  let pg: { url: string; drop: () => Promise<void> } | undefined;
  beforeAll(async () => {
    available = await postgresAvailable();
    if (available) pg = await createTestDatabase();
  }, 30_000);
  afterAll(async () => {
    await pg?.drop();
  });

  it('says jit is off, on pooled queries and inside a transaction', async () => {
    if (!available) return;
    const db = createPostgres(pg!.url, { max: 2 });
    try {
      expect((await db.query<{ jit: string }>('SHOW jit')).rows[0].jit).toBe('off');
      expect((await db.tx((sql) => sql.query<{ jit: string }>('SHOW jit'))).rows[0].jit).toBe('off');
    } finally {
      await db.close();
    }
  });

  it('keeps the options DATABASE_URL already sets', async () => {
    if (!available) return;
    const url = new URL(pg!.url);
    url.searchParams.set('options', '-c statement_timeout=4321');
    const db = createPostgres(url.toString(), { max: 1 });
    try {
      const r = await db.query<{ jit: string; timeout: string }>(`SELECT current_setting('jit') AS jit, current_setting('statement_timeout') AS timeout`);
      expect(r.rows[0]).toEqual({ jit: 'off', timeout: '4321ms' });
    } finally {
      await db.close();
    }
  });
});

describe('named statements (src/store/postgres.ts)', () => {
  it('names a text the second time it is seen, keeps one name per text, and stops naming at the cap', async () => {
    const { statementNames } = await import('../../src/store/postgres');
    const nameOf = statementNames(2);
    expect(nameOf('SELECT $1::int')).toBeUndefined();
    const a = nameOf('SELECT $1::int');
    expect(a).toBeDefined();
    expect(nameOf('SELECT $1::int')).toBe(a);
    nameOf('SELECT $1::text');
    const b = nameOf('SELECT $1::text');
    expect(b).toBeDefined();
    expect(b).not.toBe(a);
    nameOf('SELECT $1::bigint');
    expect(nameOf('SELECT $1::bigint')).toBeUndefined(); // the cap: two texts named
  });

  let pg: { url: string; drop: () => Promise<void> } | undefined;
  afterAll(async () => {
    await pg?.drop();
  });

  servicesIt('a repeated statement is prepared once on its connection; with DATABASE_PREPARED_STATEMENTS=off none is', async () => {
    pg = await createTestDatabase();
    for (const prepared of [true, false]) {
      const db = createPostgres(pg.url, { max: 1, preparedStatements: prepared });
      try {
        const names = await db.tx(async (sql) => {
          for (let i = 0; i < 3; i++) await sql.query(`SELECT $1::int + 1 AS n /* named-statement test */`, [i]);
          return (await sql.query<{ name: string; statement: string }>(`SELECT name, statement FROM pg_prepared_statements`)).rows;
        });
        const ours = names.filter((r) => r.statement.includes('named-statement test'));
        expect(ours).toHaveLength(prepared ? 1 : 0);
      } finally {
        await db.close();
      }
    }
  });
});
