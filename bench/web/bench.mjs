// In-browser benchmark of the npm package (not part of `make test`):
// p50/p95 of embed (CPU; WebGPU where headless Chromium has it), search and
// enroll at 10k and 100k vectors, reload (reopen) time, wasm size gzipped.
// Usage: node bench.mjs [--sizes 10000,100000] [--runs 100]
import { readFile, writeFile, mkdir } from 'node:fs/promises';
import { gzipSync } from 'node:zlib';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HERE, ROOT, PKG, MODELS, FIXTURES, serve, listFixture, launch, benchPage, BASE_ARGS, WEBGPU_ARGS, flag } from '../../tests/web/lib.mjs';

/** This folder: the in-page benchmark modules are under pages/, served at /bench/. */
const BENCH = fileURLToPath(new URL('.', import.meta.url));

const SIZES = flag('sizes', '10000,100000').split(',').map(Number);
const RUNS = Number(flag('runs', '100'));
const PER_CLASS = Number(flag('per-class', '10'));
const MODEL = '/models/default.bundle';

const wasm = await readFile(join(PKG, 'metricann_bg.wasm'));
const out = { wasm: { bytes: wasm.length, gzip: gzipSync(wasm, { level: 9 }).length }, embed: {}, sizes: {} };
console.log(`wasm: ${wasm.length} bytes, ${out.wasm.gzip} gzipped`);

const url = Object.values(await listFixture())[0][0];
const server = await serve({ '/pkg/': PKG, '/models/': MODELS, '/fixtures/': FIXTURES, '/bench/': join(BENCH, 'pages'), '/': join(HERE, 'pages') });

const page = (context) => benchPage(context, server.origin, '/bench/bench.js', 'b');

try {
  let ctx = await launch(BASE_ARGS);
  let p = await page(ctx);
  out.embed.cpu = await p.evaluate((a) => b.embed(a), { model: MODEL, backend: 'cpu', url, runs: RUNS });
  console.log('embed cpu', out.embed.cpu);
  for (const n of SIZES) {
    const gallery = `bench-${n}`;
    const built = await p.evaluate((a) => b.build(a), { model: MODEL, gallery, n, batch: 200, perClass: PER_CLASS });
    console.log(`built ${n}:`, built);
    await p.reload();
    await p.waitForFunction(() => window.ready === true);
    await p.evaluate(async () => (window.b = await import('/bench/bench.js')));
    const r = await p.evaluate((a) => b.ops(a), { model: MODEL, gallery, url, runs: RUNS });
    console.log(`ops ${n}:`, r);
    out.sizes[n] = { build: built, ...r };
  }
  await ctx.close();

  ctx = await launch(WEBGPU_ARGS);
  p = await page(ctx);
  const gpu = await p.evaluate(async () => (navigator.gpu ? !!(await navigator.gpu.requestAdapter()) : false));
  if (gpu) {
    out.embed.webgpu = await p.evaluate((a) => b.embed(a), { model: MODEL, backend: 'webgpu', url, runs: RUNS });
    console.log('embed webgpu', out.embed.webgpu);
  } else {
    out.embed.webgpu = null;
    console.log('embed webgpu: no WebGPU adapter in headless Chromium here');
  }
  await ctx.close();
} finally {
  await server.close();
}

const f = (x) => (x === undefined || x === null ? 'n/a' : x < 10 ? x.toFixed(2) : x.toFixed(0));
const rows = [
  `| wasm size | ${(out.wasm.bytes / 1e6).toFixed(1)} MB, ${(out.wasm.gzip / 1e6).toFixed(2)} MB gzipped |`,
  `| embed, CPU (ms) | p50 ${f(out.embed.cpu.p50)}, p95 ${f(out.embed.cpu.p95)} |`,
  `| embed, WebGPU (ms) | ${out.embed.webgpu ? `p50 ${f(out.embed.webgpu.p50)}, p95 ${f(out.embed.webgpu.p95)}` : 'no adapter in headless Chromium here'} |`,
];
for (const [n, s] of Object.entries(out.sizes)) {
  rows.push(`| search vector, ${n} vectors (ms) | p50 ${f(s.search.p50)}, p95 ${f(s.search.p95)} |`);
  rows.push(`| search image (embed + search), ${n} (ms) | p50 ${f(s.searchImage.p50)}, p95 ${f(s.searchImage.p95)} |`);
  rows.push(`| enroll 1 image (embed + IndexedDB commit), ${n} (ms) | p50 ${f(s.enroll.p50)}, p95 ${f(s.enroll.p95)} |`);
  rows.push(`| reload: open the gallery from IndexedDB, ${n} (ms) | ${f(s.open)} |`);
  rows.push(`| build ${n} vectors = ${s.build.classes} classes × ${PER_CLASS} (enrollVectors, 200 classes a transaction, + maintenance) (s) | ${(s.build.ms / 1000).toFixed(1)} (${s.build.segments} segments, ${(s.build.bytes / 1e6).toFixed(1)} MB) |`);
}
const table = ['| measure | result |', '| --- | --- |', ...rows].join('\n');
console.log(`\n${table}`);
await mkdir(join(ROOT, 'target'), { recursive: true });
await writeFile(join(ROOT, 'target/bench-web.json'), JSON.stringify(out, null, 2));
