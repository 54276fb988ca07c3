/**
 * mappings/psp/*.yaml as data with rules: every PSP file loads through the boot loader, every
 * canonical failure reason is reachable from some raw code, every rule cites its source, and a
 * rule naming a reason that does not exist stops start-up with the file and key named.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import YAML from 'yaml';
import { FAILURE_REASONS, type FailureReason } from '../../src/domain/types';
import { loadPspMapping, MAPPINGS_DIR } from '../../src/mappings/load';

const PSP_DIR = path.join(MAPPINGS_DIR, 'psp');

interface MappingFile {
  file: string;
  name: string;
  data: Record<string, unknown>;
}

const files: MappingFile[] = fs
  .readdirSync(PSP_DIR)
  .filter((f) => f.endsWith('.yaml'))
  .sort()
  .map((f) => ({ file: f, name: path.basename(f, '.yaml'), data: YAML.parse(fs.readFileSync(path.join(PSP_DIR, f), 'utf8')) }));

/** A PSP file names its provider; a shared file (sepa) has only `name` and `failureCodes`. */
const pspFiles = files.filter((f) => typeof f.data.provider === 'string');
const sharedFiles = files.filter((f) => typeof f.data.provider !== 'string');

/**
 * Reasons no PSP mapped so far has a raw code for. Each entry says which coming PSP is expected to
 * source it; remove the entry when it does. (Empty today: Stripe + SEPA cover every reason.)
 */
const REASONS_AWAITING_A_PSP: Partial<Record<FailureReason, string>> = {};

describe('mappings/psp', () => {
  it('has a Stripe mapping, and every shared file is included by some PSP (else nothing validates it)', () => {
    expect(pspFiles.map((f) => f.name)).toContain('stripe');
    const included = new Set(pspFiles.flatMap((f) => (Array.isArray(f.data.include) ? (f.data.include as string[]) : [])));
    expect(sharedFiles.map((f) => f.name).filter((n) => !included.has(n))).toEqual([]);
  });

  it.each(pspFiles.map((f) => f.name))('%s.yaml loads through loadPspMapping (with its includes)', (name) => {
    const mapping = loadPspMapping(name);
    expect(mapping.provider).toBe(name);
    expect(Object.keys(mapping.failureCodes).length).toBeGreaterThan(0);
  });

  it('the Stripe mapping carries the SEPA R-codes through include: [sepa]', () => {
    expect(loadPspMapping('stripe').failureCodes).toMatchObject({
      AM04: { reason: 'insufficient_funds', retryable: true },
      MD06: { reason: 'disputed', retryable: false },
      MD07: { retryable: false },
    });
  });

  it('maps at least one raw code to every canonical reason but unknown', () => {
    const covered = new Set<string>();
    for (const f of pspFiles) for (const rule of Object.values(loadPspMapping(f.name).failureCodes)) covered.add(rule.reason);
    const missing = FAILURE_REASONS.filter((r) => r !== 'unknown' && !covered.has(r) && !(r in REASONS_AWAITING_A_PSP));
    expect(missing).toEqual([]);
    // An allow-list entry that is covered by now must go.
    expect(Object.keys(REASONS_AWAITING_A_PSP).filter((r) => covered.has(r))).toEqual([]);
  });

  it('cites a source for every rule, in every file', () => {
    const withoutSource = files.flatMap((f) =>
      Object.entries((f.data.failureCodes ?? {}) as Record<string, { source?: unknown }>)
        .filter(([, rule]) => typeof rule?.source !== 'string' || rule.source.trim() === '')
        .map(([code]) => `${f.file}: ${code}`),
    );
    expect(withoutSource).toEqual([]);
  });
});

describe('a mapping naming an unknown canonical reason', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mappings-'));
    fs.mkdirSync(path.join(dir, 'psp'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  const write = (name: string, text: string) => fs.writeFileSync(path.join(dir, 'psp', `${name}.yaml`), text);

  it('fails to load, naming the file and the key', () => {
    write('fakepsp', ['provider: fakepsp', 'failureCodes:', '  card_melted:', '    reason: card_on_fire', '    retryable: false', '    source: test'].join('\n'));
    expect(() => loadPspMapping('fakepsp', dir)).toThrow(/fakepsp\.yaml: failureCodes\.card_melted\.reason:/);
  });

  it('fails to load when the bad rule sits in an included shared file', () => {
    write('fakepsp', 'provider: fakepsp\ninclude: [fakeshared]\n');
    write('fakeshared', ['name: fakeshared', 'failureCodes:', '  ZZ99:', '    reason: debtor_on_holiday', '    retryable: true', '    source: test'].join('\n'));
    expect(() => loadPspMapping('fakepsp', dir)).toThrow(/fakeshared\.yaml: failureCodes\.ZZ99\.reason:/);
  });

  it('a rule without a source fails to load, naming the key', () => {
    write('fakepsp', ['provider: fakepsp', 'failureCodes:', '  card_melted:', '    reason: card_declined', '    retryable: false'].join('\n'));
    expect(() => loadPspMapping('fakepsp', dir)).toThrow(/fakepsp\.yaml: failureCodes\.card_melted\.source:/);
  });

  it('and an event mapped to an unknown kind fails the same way', () => {
    write('fakepsp', 'provider: fakepsp\nevents:\n  thing.happened: payment_exploded\n');
    expect(() => loadPspMapping('fakepsp', dir)).toThrow(/fakepsp\.yaml: events\.thing\.happened:/);
  });
});
