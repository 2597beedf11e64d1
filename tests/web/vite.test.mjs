// A consumer app: a minimal Vite 7 project imports the packed package (main
// thread and createWorker()), `vite build`s, and runs in headless Chromium.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdir, copyFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { MODELS, FIXTURES, HERE, listFixture, serve, launch, watch } from './lib.mjs';
import { pack, project } from './pack.mjs';

const MAIN = `
import { MetricAnn, createWorker } from 'metricann';

const bytes = async (u) => new Uint8Array(await (await fetch(u)).arrayBuffer());
async function run() {
  const labels = ['a', 'b', 'c'];
  const images = await Promise.all(labels.map((l) => bytes('/' + l + '.png')));
  const ann = await MetricAnn.open({ model: '/model.bundle', gallery: 'vite-app' });
  for (let i = 0; i < 3; i++) await ann.enroll(labels[i], images[i]);
  const main = (await ann.search(images[1])).matches[0].label;
  const backend = (await ann.stats()).backend;
  await ann.close();
  const remote = createWorker();
  const w = await remote.open({ model: '/model.bundle' });
  for (let i = 0; i < 3; i++) await w.enroll(labels[i], images[i]);
  const worker = (await w.search(images[2])).matches[0].label;
  remote.terminate();
  return { main, worker, backend };
}
run().then(
  (r) => (window.__result = r),
  (e) => (window.__result = { error: { code: e.code, message: e.message } }),
);
`;

test('a Vite 7 app bundles the package and runs it in Chromium', async () => {
  const { tarball } = await pack();
  const dir = await project(tarball, {
    'index.html': '<!doctype html><html><head><meta charset="utf-8"><title>consumer</title><link rel="icon" href="data:,"></head><body><script type="module" src="/main.js"></script></body></html>\n',
    'main.js': MAIN,
    'vite.config.js': "export default { worker: { format: 'es' }, build: { target: 'es2022' }, logLevel: 'warn' };\n",
  });
  await mkdir(join(dir, 'public'));
  await copyFile(join(MODELS, 'default.bundle'), join(dir, 'public/model.bundle'));
  const classes = Object.entries(await listFixture()).slice(0, 3);
  for (const [i, [, urls]] of classes.entries()) {
    await copyFile(join(FIXTURES, decodeURIComponent(urls[0].replace('/fixtures/', ''))), join(dir, 'public', `${'abc'[i]}.png`));
  }
  const require = createRequire(join(HERE, 'package.json'));
  const viteBin = join(require.resolve('vite/package.json'), '..', 'bin/vite.js');
  const log = execFileSync(process.execPath, [viteBin, 'build'], { cwd: dir, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  if (log.trim()) console.log(log.trim().split('\n').map((l) => `# vite: ${l}`).join('\n'));
  const assets = await readdir(join(dir, 'dist/assets'));
  console.log(`# vite build: dist/assets: ${assets.join(', ')}`);
  assert.ok(assets.some((a) => a.endsWith('.wasm')), 'the wasm is emitted as an asset');

  const server = await serve({ '/': join(dir, 'dist') });
  const context = await launch();
  try {
    const page = await context.newPage();
    watch(page, 'vite');
    await page.goto(`${server.origin}/index.html`);
    await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 120_000 });
    const result = await page.evaluate(() => window.__result);
    console.log(`# vite app: ${JSON.stringify(result)}`);
    assert.equal(result.error, undefined, JSON.stringify(result.error));
    assert.equal(result.main, 'b');
    assert.equal(result.worker, 'c');
    assert.equal(result.backend, 'cpu');
  } finally {
    await context.close();
    await server.close();
  }
});
