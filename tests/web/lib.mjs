// Shared helpers of the web tests: paths, a tiny static server, Chromium.
import { createServer } from 'node:http';
import { readFile, stat, readdir, mkdtemp } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { join, extname, resolve, normalize, sep } from 'node:path';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { ISOLATION_HEADERS } from '../../scripts/demo-server.mjs';

export const HERE = fileURLToPath(new URL('.', import.meta.url));
export const ROOT = resolve(HERE, '../..');
export const PKG = resolve(process.env.METRICANN_PKG ?? join(ROOT, 'pkg'));
export const MODELS = resolve(process.env.METRICANN_MODEL_DIR ?? join(ROOT, 'target/web-model'));
export const FIXTURES = resolve(process.env.METRICANN_FIXTURES ?? join(ROOT, 'tests/fixtures/glyphs'));

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.wasm': 'application/wasm',
  '.png': 'image/png',
  '.css': 'text/css',
};

/**
 * Serves `mounts` ({ '/prefix/': dir }) on 127.0.0.1 (a free port), cross-origin
 * isolated (COOP + COEP: the package's threaded build) when `isolated`. `GET
 * /fixtures.json` lists the glyph fixture: { train: { class: [files] } }.
 */
export async function serve(mounts, { isolated = false } = {}) {
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  const server = createServer(async (req, res) => {
    try {
      const url = new URL(req.url, 'http://127.0.0.1');
      const path = decodeURIComponent(url.pathname);
      if (path === '/fixtures.json') {
        res.writeHead(200, { 'content-type': TYPES['.json'] });
        res.end(JSON.stringify(await listFixture()));
        return;
      }
      const prefix = prefixes.find((p) => path.startsWith(p));
      if (!prefix) throw Object.assign(new Error('no mount'), { code: 'ENOENT' });
      const base = resolve(mounts[prefix]);
      let file = normalize(join(base, path.slice(prefix.length)));
      if (file !== base && !file.startsWith(base + sep)) throw Object.assign(new Error('outside'), { code: 'ENOENT' });
      if ((await stat(file)).isDirectory()) file = join(file, 'index.html');
      const body = await readFile(file);
      res.writeHead(200, {
        'content-type': TYPES[extname(file)] ?? 'application/octet-stream',
        'content-length': body.length,
        'cache-control': 'no-store',
        ...(isolated ? ISOLATION_HEADERS : {}),
      });
      res.end(body);
    } catch (e) {
      res.writeHead(e.code === 'ENOENT' ? 404 : 500, { 'content-type': 'text/plain' });
      res.end(String(e.message));
    }
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address();
  return { origin: `http://127.0.0.1:${port}`, close: () => new Promise((ok) => server.close(ok)) };
}

export async function listFixture(split = 'train') {
  const dir = join(FIXTURES, split);
  const out = {};
  for (const c of (await readdir(dir)).sort()) {
    const files = (await readdir(join(dir, c))).filter((f) => /\.(png|jpe?g|webp|gif|bmp)$/i.test(f)).sort();
    if (files.length) out[c] = files.map((f) => `/fixtures/${split}/${encodeURIComponent(c)}/${encodeURIComponent(f)}`);
  }
  return out;
}

/** The value after `--name` on the command line, or `dflt` (the benchmark scripts' flags). */
export function flag(name, dflt) {
  const i = process.argv.indexOf(`--${name}`, 2);
  return i >= 0 ? process.argv[i + 1] : dflt;
}

export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
export const BASE_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
export const WEBGPU_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--enable-unsafe-webgpu',
  '--enable-features=Vulkan,WebGPU',
  '--use-angle=swiftshader',
  '--use-webgpu-adapter=swiftshader',
  '--ignore-gpu-blocklist',
];

/** A fresh persistent Chromium context (its own user-data-dir). */
export async function launch(args = BASE_ARGS) {
  const { chromium } = await import('playwright-core');
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/setup.sh (Debian chromium)`);
  const dir = await mkdtemp(join(tmpdir(), 'metricann-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: CHROMIUM,
    headless: true,
    args,
  });
  return context;
}

/** A new page of `context` on `origin`'s index.html, with the in-page module `module` loaded as `window[global]` (the benchmarks' pages). */
export async function benchPage(context, origin, module, global) {
  const p = await context.newPage();
  watch(p, global);
  p.setDefaultTimeout(0);
  await p.goto(`${origin}/index.html`);
  await p.waitForFunction(() => window.ready === true);
  await p.evaluate(async ({ module, global }) => (window[global] = await import(module)), { module, global });
  return p;
}

/** A new page of `context` on `origin`'s index.html once its helpers are loaded (`window.h`). */
export async function openPage(context, origin, tag) {
  const page = await context.newPage();
  watch(page, tag);
  await page.goto(`${origin}/index.html`);
  await page.waitForFunction(() => window.ready === true);
  return page;
}

/** Forwards a page's console errors and uncaught exceptions to the test log. */
export function watch(page, tag) {
  page.on('console', (m) => {
    if (m.type() === 'error' || m.type() === 'warning') console.log(`[${tag} console.${m.type()}] ${m.text()}`);
  });
  page.on('pageerror', (e) => console.log(`[${tag} pageerror] ${e.message}`));
}

export function cosine(a, b) {
  let d = 0, na = 0, nb = 0;
  for (let i = 0; i < a.length; i++) {
    d += a[i] * b[i];
    na += a[i] * a[i];
    nb += b[i] * b[i];
  }
  return d / Math.sqrt(na * nb);
}
