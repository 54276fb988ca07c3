/**
 * Headless Chromium for the dashboard tests: Debian's `chromium` (/usr/bin/chromium, or
 * CHROMIUM_PATH) driven by playwright-core, with a fresh profile per launch. Missing Chromium
 * skips the browser tests with a warning on a developer's machine and fails them under CI=true.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { chromium, type BrowserContext } from 'playwright-core';
import type { Express } from 'express';

export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
export const CI = process.env.CI === 'true' || process.env.CI === '1';
export const haveChromium = fs.existsSync(CHROMIUM_PATH);

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

export const SCREENSHOTS = path.resolve(__dirname, '../../docs/screenshots');

export interface BrowserSession {
  context: BrowserContext;
  downloads: string;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<BrowserSession> {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-dashboard-profile-'));
  const downloads = fs.mkdtempSync(path.join(os.tmpdir(), 'hub-dashboard-downloads-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM_PATH,
    headless: true,
    args: CHROMIUM_ARGS,
    viewport: { width: 1280, height: 800 },
    acceptDownloads: true,
    downloadsPath: downloads,
    timezoneId: 'Europe/Amsterdam',
    locale: 'en-GB',
  });
  return {
    context,
    downloads,
    async close() {
      await context.close();
      fs.rmSync(profile, { recursive: true, force: true });
      fs.rmSync(downloads, { recursive: true, force: true });
    },
  };
}

/** Serve an express app on a free loopback port. */
export async function serve(app: Express): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return {
    url,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Which suite function to use, and a note on why the browser tests do not run. */
export function browserSuite(): { describe: jest.Describe; missing: string | null } {
  if (haveChromium) return { describe, missing: null };
  const missing = `Chromium not found at ${CHROMIUM_PATH} (apt-get install -y chromium, or set CHROMIUM_PATH)`;
  if (CI) return { describe, missing };
  // eslint-disable-next-line no-console
  console.warn(`${missing}; the browser tests are skipped outside CI`);
  return { describe: describe.skip, missing };
}
