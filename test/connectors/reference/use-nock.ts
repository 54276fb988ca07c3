/**
 * nock for the reference connector tests: loaded through nock-node20.cjs (see there for why),
 * network disabled for the whole file, every mock consumed by the end of each test, and
 * interception switched off afterwards so later test files in the same worker (database,
 * queue) reach their real sockets.
 */
import NodeModule from 'node:module';
import path from 'node:path';
import type nockType from 'nock';

type Nock = typeof nockType;

interface NativeModuleClass {
  new (id: string): { filename: string; paths: string[]; require(id: string): unknown };
  _nodeModulePaths(dir: string): string[];
}

interface Loaded {
  nock: Nock;
  networkError(code: string, message: string): Error;
}

function loadNock(): Loaded {
  // Jest's `module` keeps Node's own Module class; its require is Node's, not Jest's.
  const NativeModule = (NodeModule as unknown as { Module: NativeModuleClass }).Module;
  const host = new NativeModule(__filename);
  host.filename = __filename;
  host.paths = (NodeModule as unknown as NativeModuleClass)._nodeModulePaths(path.dirname(__filename));
  return host.require(path.join(__dirname, 'nock-node20.cjs')) as Loaded;
}

const loaded = loadNock();

/** A transport error (ECONNREFUSED, ECONNRESET…) for `replyWithError`, made where nock can recognise it. */
export const networkError = (code: string, message: string): Error => loaded.networkError(code, message);

export function useNock(): Nock {
  const { nock } = loaded;
  beforeAll(() => {
    if (!nock.isActive()) nock.activate();
    nock.disableNetConnect();
  });
  afterEach(() => {
    const pending = nock.pendingMocks();
    nock.cleanAll();
    // An expected call that never came is a failure, not a leftover for the next test.
    expect(pending).toEqual([]);
  });
  afterAll(() => {
    nock.cleanAll();
    nock.enableNetConnect();
    nock.restore();
  });
  return nock;
}

export interface Received {
  method: string;
  /** Path and query as the agency saw them. */
  path: string;
  headers: Record<string, string>;
  body: unknown;
}

type ReplyBody = string | Record<string, unknown>;
type ReplyResult = [number, ReplyBody, Record<string, string>];

function parseBody(text: unknown): unknown {
  if (text === undefined || text === '') return undefined;
  return typeof text === 'string' ? JSON.parse(text) : text;
}

/**
 * A nock reply function that hands `answer` what the agency received. nock 15 passes the Fetch
 * Request; nock 14 passes (path, body) with the request on `this.req`. The rest parameter keeps
 * the arity at 1, so neither version mistakes it for callback style.
 */
export function replyWith(answer: (received: Received) => ReplyResult) {
  return async function (
    this: { req?: { method?: string; headers: Record<string, string> } },
    first: unknown,
    ...rest: unknown[]
  ): Promise<ReplyResult> {
    if (typeof first === 'string') {
      const req = this.req!;
      return answer({ method: req.method ?? '', path: first, headers: { ...req.headers }, body: parseBody(rest[0]) });
    }
    const req = first as Request;
    const url = new URL(req.url);
    return answer({
      method: req.method,
      path: `${url.pathname}${url.search}`,
      headers: Object.fromEntries(req.headers.entries()),
      body: parseBody(await req.text()),
    });
  };
}

/** A nock reply that records what the agency received and answers `status`/`body`/`headers`. */
export function recordingReply(into: Received[], status: number, body?: ReplyBody, headers?: Record<string, string>) {
  return replyWith((received) => {
    into.push(received);
    return [status, body ?? '', headers ?? {}];
  });
}
