// On-device adaptation in headless Chromium (not part of `make test`): for each
// (source, classes, shots), a fresh page enrolls the classes' first `shots`
// enrollment images with the shipped objects model, measures top-1 of their
// camera-like queries, runs adapt() with its defaults, and measures again; with
// the time adapt() took and the wasm memory it grew to. The classes are held-out
// eval classes (target/objects-data/eval, and target/objects-adapt for 500 emoji;
// scripts/objects-data.sh builds both), never trained or tuned on.
// Usage: node bench/web/adapt.mjs [--out bench/results/browser-adapt.json] [--only photo]
import { readdir, writeFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execFileSync } from 'node:child_process';
import { HERE, ROOT, PKG, CHROMIUM, serve, launch, benchPage, BASE_ARGS, WEBGPU_ARGS, flag } from '../../tests/web/lib.mjs';

const BENCH = fileURLToPath(new URL('.', import.meta.url));
const OUT = flag('out', join(ROOT, 'bench/results/browser-adapt.json'));
const ONLY = flag('only', null);
const EVAL = join(ROOT, 'target/objects-data/eval');
const MORE = join(ROOT, 'target/objects-adapt/eval');

// SwiftShader embeds the objects model ~30× slower than the wasm CPU path: only
// the smallest gallery runs on it.
const CASES = [
  ...[['photo', 20], ['photo', 65], ['emoji', 20], ['emoji', 100], ['emoji-500', 500]].flatMap(([source, n]) =>
    [1, 3].map((shots) => ({ source, n, shots, backend: 'cpu' })),
  ),
  { source: 'photo', n: 20, shots: 3, backend: 'webgpu' },
  { source: 'photo', n: 20, shots: 1, backend: 'webgpu' },
].filter((c) => !ONLY || c.source === ONLY);

async function classesOf(mount, dir, n) {
  const names = (await readdir(dir)).sort().slice(0, n);
  const out = [];
  for (const name of names) {
    const files = (await readdir(join(dir, name))).sort();
    const url = (f) => `${mount}${encodeURIComponent(name)}/${encodeURIComponent(f)}`;
    out.push({
      label: name,
      enroll: files.filter((f) => f.startsWith('enroll-')).map(url),
      queries: files.filter((f) => f.startsWith('query-')).map(url),
    });
  }
  if (out.length < n) throw new Error(`${dir} holds ${out.length} classes, not ${n}: run scripts/objects-data.sh`);
  return out;
}

const server = await serve({
  '/pkg/': PKG,
  '/models/': join(ROOT, 'www/models'),
  '/eval/': EVAL,
  '/more/': MORE,
  '/bench/': join(BENCH, 'pages'),
  '/': join(HERE, 'pages'),
});
const chromium = execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).trim();
const out = { date: new Date().toISOString(), chromium, model: 'www/models/objects.bundle', options: 'adapt() defaults', results: [] };
const contexts = {};
try {
  for (const c of CASES) {
    contexts[c.backend] ??= await launch(c.backend === 'cpu' ? BASE_ARGS : WEBGPU_ARGS);
    const classes =
      c.source === 'emoji-500'
        ? await classesOf('/more/emoji/', join(MORE, 'emoji'), c.n)
        : await classesOf(`/eval/${c.source}/`, join(EVAL, c.source), c.n);
    const page = await benchPage(contexts[c.backend], server.origin, '/bench/adapt.js', 'a');
    const t0 = Date.now();
    const r = await page.evaluate((args) => window.a.run(args), { model: '/models/objects.bundle', backend: c.backend, classes, shots: c.shots, options: {} }).catch(
      (e) => ({ error: String(e) }),
    );
    await page.close();
    if (r.error) {
      console.log(`${c.source} ${c.n} × ${c.shots} on ${c.backend}: ${r.error}`);
      out.results.push({ ...c, error: r.error });
      continue;
    }
    const h = r.result.heldOut;
    console.log(
      `${c.source} ${c.n} × ${c.shots} on ${r.backend}: top-1 ${r.before.toFixed(3)} → ${r.after.toFixed(3)}; ` +
        `held-out ${h ? `${h.top1Before.toFixed(3)} → ${h.top1After.toFixed(3)}${h.views ? ' (views)' : ''}` : '-'}; ` +
        `kept ${r.result.kept}; adapt ${r.adaptSeconds.toFixed(1)} s (features ${r.result.featureSeconds.toFixed(1)}, ` +
        `training ${r.result.trainingSeconds.toFixed(2)}); wasm memory ${(r.wasmMemoryBefore / 2 ** 20).toFixed(0)} → ` +
        `${(r.wasmMemoryAfter / 2 ** 20).toFixed(0)} MiB; ${((Date.now() - t0) / 1e3).toFixed(0)} s in all`,
    );
    out.results.push({ ...c, ...r });
    await mkdir(dirname(OUT), { recursive: true });
    await writeFile(OUT, `${JSON.stringify(out, null, 2)}\n`);
  }
} finally {
  for (const ctx of Object.values(contexts)) await ctx.close();
  await server.close();
}
