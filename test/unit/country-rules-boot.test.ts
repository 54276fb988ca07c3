/**
 * Country-rules data (mappings/policy/country-rules.yaml) is validated when the hub starts, not at
 * the first hand-over check (issue 12, hole 9): a broken file stops start-up with a message naming
 * the file and the key; the shipped file starts.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { parseConfig } from '../../src/config/load';
import { createHub } from '../../src/hub';
import { createLogger } from '../../src/observability/logger';
import { createPglite } from '../../src/store/pglite';
import { COUNTRY_RULES_FILE } from '../../src/policy/country-rules';
import { testConfigYaml } from '../support/stack';

const config = () => parseConfig(testConfigYaml({ simUrl: 'http://127.0.0.1:9', hubPort: 0, handoverAfterDays: 0, minAmount: 0, stackWindowDays: 45 }), {});

describe('country rules at start-up', () => {
  let dir: string;
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'country-rules-'));
  });
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('a rule without its source stops start-up, naming the file and the key', async () => {
    const shipped = fs.readFileSync(COUNTRY_RULES_FILE, 'utf8');
    // The first `sources:` list of the shipped file emptied: every rule needs a source.
    const broken = shipped.replace(/sources:\s*\n(\s+- .*\n)+/, 'sources: []\n');
    expect(broken).not.toBe(shipped);
    const file = path.join(dir, 'no-source.yaml');
    fs.writeFileSync(file, broken);
    await expect(createHub({ config: config(), countryRulesFile: file, logger: createLogger({ silent: true }) }))
      .rejects.toThrow(/^country rules: .*no-source\.yaml: rules\.0\..*sources.*the hub does not start/);
  });

  it('a file that is not YAML, or two rules for one country and debtor type, stops start-up', async () => {
    const bad = path.join(dir, 'bad.yaml');
    fs.writeFileSync(bad, 'rules: [ {');
    await expect(createHub({ config: config(), countryRulesFile: bad, logger: createLogger({ silent: true }) })).rejects.toThrow(/^country rules: /);
    const twice = path.join(dir, 'twice.yaml');
    fs.writeFileSync(twice, 'rules:\n  - { country: NL, debtorType: consumer }\n  - { country: NL, debtorType: consumer }\n');
    await expect(createHub({ config: config(), countryRulesFile: twice, logger: createLogger({ silent: true }) })).rejects.toThrow(/two rules for NL\/consumer/);
  });

  it('the shipped file starts', async () => {
    const db = await createPglite();
    const hub = await createHub({ config: config(), db, logger: createLogger({ silent: true }) });
    await hub.stop();
    await db.close();
  });
});
