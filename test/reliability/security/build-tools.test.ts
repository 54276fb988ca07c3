/**
 * Issue 13, item 8: build tools stay out of the production dependencies. The Docker image installs
 * `npm ci --omit=dev` and runs the compiled JS (`node dist/src/main.js`); tsx, TypeScript, esbuild
 * and the test tools are dev dependencies, which a fresh clone's `npm ci` still installs for
 * `npm start`, `npm run demo` and `npm run token`.
 */
import fs from 'node:fs';
import path from 'node:path';

const ROOT = path.resolve(__dirname, '../../..');
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8'));

/** Packages that build, transpile or test; none belongs to what the image runs. */
const BUILD_TOOLS = [/^tsx$/, /^typescript$/, /^esbuild$/, /^ts-node$/, /^ts-jest$/, /^jest$/, /^@types\//, /^nock$/, /^fast-check$/, /^playwright(-core)?$/, /^autocannon$/];

describe('production dependencies', () => {
  it('hold no build or test tool', () => {
    const prod = Object.keys(pkg.dependencies ?? {});
    expect(prod.filter((name) => BUILD_TOOLS.some((re) => re.test(name)))).toEqual([]);
  });

  it('tsx and its esbuild are dev-only in the lock file, so `npm ci --omit=dev` (the image) leaves them out', () => {
    for (const name of ['tsx', 'esbuild', 'typescript']) {
      expect({ name, dev: lock.packages[`node_modules/${name}`]?.dev }).toEqual({ name, dev: true });
    }
  });

  it('the image runs compiled JS, and the scripts a clone runs through tsx are dev-time scripts', () => {
    const dockerfile = fs.readFileSync(path.join(ROOT, 'Dockerfile'), 'utf8');
    expect(dockerfile).toMatch(/npm ci --omit=dev/);
    expect(dockerfile).toMatch(/^ENTRYPOINT \["node", "dist\/src\/main\.js"/m);
    for (const script of ['start', 'demo', 'token']) expect(pkg.scripts[script]).toMatch(/^tsx /);
    expect(pkg.devDependencies.tsx).toBeDefined();
  });

  it('no code the image runs imports a build tool', () => {
    const offenders: string[] = [];
    const walk = (dir: string) => {
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith('.ts') && /from ['"](tsx|typescript|esbuild|ts-node)(\/[^'"]*)?['"]|require\(['"](tsx|typescript|esbuild)/.test(fs.readFileSync(p, 'utf8'))) offenders.push(path.relative(ROOT, p));
      }
    };
    for (const dir of ['src', 'connectors']) walk(path.join(ROOT, dir));
    expect(offenders).toEqual([]);
  });
});
