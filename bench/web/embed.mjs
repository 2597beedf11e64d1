// Embedding latency of the shipped models in headless Chromium (not part of
// `make test`): one photo embedded `--runs` times after a warm-up, p50/p95, on
// the CPU (wasm SIMD) and on WebGPU where headless Chromium has an adapter
// (SwiftShader here, a software renderer: it says nothing of a real GPU).
// The objects model ships at 160²; the 224² row is the same weights with the
// input size rewritten in the bundle header, to compare with the published
// 224² figures of EfficientNet-Lite0.
// Usage: node bench/web/embed.mjs [--runs 20] [--out bench/results/browser-embed.json]
import { readFile, writeFile, mkdir, mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { crc32 } from 'node:zlib';
import { execFileSync } from 'node:child_process';
import { HERE, ROOT, PKG, CHROMIUM, serve, launch, benchPage, BASE_ARGS, WEBGPU_ARGS, flag } from '../../tests/web/lib.mjs';

const BENCH = fileURLToPath(new URL('.', import.meta.url));
const RUNS = Number(flag('runs', '20'));
const OUT = flag('out', join(ROOT, 'bench/results/browser-embed.json'));
const PHOTO = join(ROOT, 'tests/fixtures/imagenet');

/** The bundle with its header's input size replaced (the weights, and so the fingerprint, unchanged). */
function withInputSize(bundle, size) {
  const view = new DataView(bundle.buffer, bundle.byteOffset, bundle.byteLength);
  const headerLen = view.getUint32(12, true);
  const header = JSON.parse(new TextDecoder().decode(bundle.subarray(16, 16 + headerLen)));
  header.preprocessing.input_size = size;
  const newHeader = new TextEncoder().encode(JSON.stringify(header));
  const rest = bundle.subarray(16 + headerLen, bundle.length - 4);
  const out = new Uint8Array(16 + newHeader.length + rest.length + 4);
  out.set(bundle.subarray(0, 12));
  new DataView(out.buffer).setUint32(12, newHeader.length, true);
  out.set(newHeader, 16);
  out.set(rest, 16 + newHeader.length);
  new DataView(out.buffer).setUint32(out.length - 4, crc32(out.subarray(0, out.length - 4)), true);
  return out;
}

const models = await mkdtemp(join(tmpdir(), 'metricann-embed-bench-'));
const objects = await readFile(join(ROOT, 'www/models/objects.bundle'));
await writeFile(join(models, 'objects-160.bundle'), objects);
await writeFile(join(models, 'objects-224.bundle'), withInputSize(objects, 224));
await writeFile(join(models, 'glyphs-64.bundle'), await readFile(join(ROOT, 'www/models/glyphs.bundle')));
const CASES = [
  { name: 'objects (EfficientNet-Lite0), 160²', model: '/models/objects-160.bundle' },
  { name: 'objects (EfficientNet-Lite0), 224²', model: '/models/objects-224.bundle' },
  { name: 'glyphs (residual CNN), 64²', model: '/models/glyphs-64.bundle' },
];

const server = await serve({
  '/pkg/': PKG,
  '/models/': models,
  '/photos/': PHOTO,
  '/bench/': join(BENCH, 'pages'),
  '/': join(HERE, 'pages'),
});
const chromium = execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).trim();
const out = { date: new Date().toISOString(), runs: RUNS, chromium, results: [] };
try {
  for (const [backend, args] of [['cpu', BASE_ARGS], ['webgpu', WEBGPU_ARGS]]) {
    const ctx = await launch(args);
    const p = await benchPage(ctx, server.origin, '/bench/bench.js', 'b');
    const available = backend === 'cpu' || (await p.evaluate(async () => !!(navigator.gpu && (await navigator.gpu.requestAdapter()))));
    for (const c of CASES) {
      if (!available) {
        out.results.push({ case: c.name, backend, skipped: 'no WebGPU adapter in headless Chromium here' });
        continue;
      }
      const r = await p.evaluate((a) => b.embed(a), { model: c.model, backend, url: '/photos/coffee.png', runs: RUNS });
      console.log(`${c.name}, ${backend} (ran on ${r.backend}): p50 ${r.p50.toFixed(1)} ms, p95 ${r.p95.toFixed(1)} ms`);
      out.results.push({ case: c.name, backend: r.backend, p50: r.p50, p95: r.p95, n: r.n });
    }
    await ctx.close();
  }
} finally {
  await server.close();
}
await mkdir(dirname(OUT), { recursive: true });
await writeFile(OUT, `${JSON.stringify(out, null, 2)}\n`);
const rows = out.results.map((r) =>
  r.skipped ? `| ${r.case} | ${r.backend} | ${r.skipped} |` : `| ${r.case} | ${r.backend} | ${r.p50.toFixed(1)} / ${r.p95.toFixed(1)} |`,
);
console.log(['', '| model, input | backend | embed p50 / p95 (ms) |', '| --- | --- | ---: |', ...rows].join('\n'));
console.log(`results: ${OUT}`);
