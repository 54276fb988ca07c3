/**
 * The merchant dashboard (issue 5): static HTML/CSS/JS modules served at `/dashboard` (no build
 * step), talking only to the merchant API with the merchant's token, plus the dashboard-only
 * routes of ./api (CSV exports, case totals). Mount it through createApp's installers:
 *
 *   createApp(ctx, [(app) => installDashboard(app, ctx)])
 */
import fs from 'node:fs';
import path from 'node:path';
import express, { type Express } from 'express';
import type { HubContext } from '../context';
import { dashboardApiRouter } from './api';

const CANDIDATES = [path.join(__dirname, 'public'), path.resolve(__dirname, '../../../src/dashboard/public'), path.resolve(process.cwd(), 'src/dashboard/public')];

/** Where the static files are: beside this file (tsx, or dist with the folder copied), else in the source tree. */
export function dashboardPublicDir(): string | null {
  return CANDIDATES.find((d) => fs.existsSync(path.join(d, 'index.html'))) ?? null;
}

const CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "font-src 'self'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

export function installDashboard(app: Express, ctx: HubContext): void {
  app.use(dashboardApiRouter(ctx));
  const dir = dashboardPublicDir();
  app.use('/dashboard', (req, res, next) => {
    res.setHeader('Content-Security-Policy', CSP);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('X-Frame-Options', 'DENY');
    // `/dashboard` → `/dashboard/`, so the page's relative module paths resolve under it.
    if (req.method === 'GET' && req.originalUrl.split('?')[0] === '/dashboard') return res.redirect(301, '/dashboard/');
    next();
  });
  if (!dir) {
    // A build that left the files out must not take the hub down: the API still works.
    ctx.logger.error('dashboard: static files not found; /dashboard answers 503', { lookedIn: CANDIDATES });
    app.use('/dashboard', (_req, res) => void res.status(503).type('text/plain').send('The dashboard files are not installed in this build.'));
    return;
  }
  app.use(
    '/dashboard',
    express.static(dir, {
      index: 'index.html',
      redirect: false,
      fallthrough: true,
      // Small files, changed with each release: always revalidate (no stale JS after an upgrade).
      setHeaders: (res) => res.setHeader('Cache-Control', 'no-cache'),
    }),
  );
  ctx.logger.debug('dashboard mounted at /dashboard', { dir });
}
