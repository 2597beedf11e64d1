// Cold start, latency and memory of the edge examples (examples/edge/) on
// Cloudflare's workerd (wrangler dev), Deno and Bun. Not part of `make test`.
//
// The gallery holds the four ImageNet fixture photos plus 10,000 classes of
// random vectors. For each runtime, `--rounds` times: start the example, POST a
// camera-like capture until it answers, then `--runs` more. Figures:
//   ready_ms     process start → the server answers HTTP (wrangler: bundling and
//                miniflare; Deno, Bun: the package loaded, the model opened and the
//                gallery imported before the server listens);
//   first_ms     the first /recognise (workerd opens the model and imports the
//                gallery on the first request: that is its cold start);
//   cold_ms      ready_ms + first_ms, what a user waits for after a deploy;
//   p50_ms       warm recognitions;
//   rss_mb       resident memory of the runtime's processes after the runs (for
//                wrangler, the largest workerd process: the one that hosts the
//                Worker's isolate; wrangler's own Node processes are not counted).
// The Worker's upload size comes from `wrangler deploy --dry-run`; the
// package's own memory (wasm linear memory, JS heap) from Node after the
// gallery is imported and searched.
// Usage: node bench/edge/bench.mjs [--rounds 3] [--runs 20] [--out bench/results/edge.json]
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, readdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT, flag } from '../../tests/web/lib.mjs';
import { RUNTIMES, edgeProject, capture, start, recognise } from '../../tests/edge/runtimes.mjs';

const ROUNDS = Number(flag('rounds', '3'));
const RUNS = Number(flag('runs', '20'));
const OUT = flag('out', join(ROOT, 'bench/results/edge.json'));
const EXTRA_CLASSES = 10_000;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Resident memory (MB) of `pid` and its descendants: their sum, or with
 * `only`, the largest of those whose name starts with it. */
async function rssMb(pid, only = null) {
  const children = new Map();
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = (await readFile(`/proc/${entry}/stat`, 'utf8')).trim();
      const [, name, rest] = stat.match(/^\d+ \((.*)\) (.*)$/s);
      const ppid = Number(rest.split(' ')[1]);
      if (!children.has(ppid)) children.set(ppid, []);
      children.get(ppid).push({ pid: Number(entry), name, kb: await rssKb(entry) });
    } catch {
      // the process ended while we read it
    }
  }
  const tree = [{ pid, name: '', kb: await rssKb(pid) }];
  for (let i = 0; i < tree.length; i++) tree.push(...(children.get(tree[i].pid) ?? []));
  if (only === null) return tree.reduce((sum, p) => sum + p.kb, 0) / 1024;
  return Math.max(0, ...tree.filter((p) => p.name.startsWith(only)).map((p) => p.kb)) / 1024;
}

async function rssKb(pid) {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(status.match(/VmRSS:\s+(\d+)/)?.[1] ?? 0);
}

async function round(runtime, dir, photo) {
  const t0 = performance.now();
  const server = await start(runtime, dir);
  const ready = performance.now() - t0;
  try {
    const t1 = performance.now();
    const first = await recognise(server.url, photo);
    const firstMs = performance.now() - t1;
    if (first.status !== 200) throw new Error(`${runtime}: ${JSON.stringify(first.body)}\n${server.log()}`);
    const warm = [];
    for (let i = 0; i < RUNS; i++) {
      const t = performance.now();
      await recognise(server.url, photo);
      warm.push(performance.now() - t);
    }
    const rss = await rssMb(server.process.pid, runtime === 'workerd' ? 'workerd' : null);
    return { ready_ms: ready, first_ms: firstMs, cold_ms: ready + firstMs, p50_ms: median(warm), rss_mb: rss };
  } finally {
    server.stop();
    await new Promise((r) => setTimeout(r, 500));
  }
}

/** What the package itself holds once the gallery is imported and searched
 * (in Node, the same wasm): its linear memory and the JS heap, in MB. */
function packageMemory(dir) {
  const script = `
    import { readFile } from 'node:fs/promises';
    import { MetricAnn } from 'metricann';
    import init from './node_modules/metricann/metricann.js';
    const ann = await MetricAnn.import(await readFile('gallery.metricann'), { model: 'objects', backend: 'cpu' });
    await ann.search(await readFile(process.argv[1]));
    const memory = (await init()).memory.buffer.byteLength;
    console.log(JSON.stringify({ wasm_memory_mb: memory / 2 ** 20, js_heap_mb: process.memoryUsage().heapUsed / 2 ** 20 }));
  `;
  const out = execFileSync(process.execPath, ['--input-type=module', '-e', script, PHOTO_PATH], { cwd: dir, encoding: 'utf8' });
  return JSON.parse(out.trim().split('\n').at(-1));
}

function workerUpload(dir) {
  const out = execFileSync(join(ROOT, 'tests/edge/node_modules/.bin/wrangler'), ['deploy', '--dry-run', '--outdir', join(dir, 'dist')], {
    cwd: join(dir, 'workerd'),
    env: { ...process.env, WRANGLER_SEND_METRICS: 'false', CI: '1', XDG_CONFIG_HOME: join(dir, '.config') },
    encoding: 'utf8',
  });
  const m = out.match(/Total Upload: ([\d.]+) KiB \/ gzip: ([\d.]+) KiB/);
  return m ? { upload_kib: Number(m[1]), gzip_kib: Number(m[2]) } : { raw: out };
}

const dir = await edgeProject({ extraClasses: EXTRA_CLASSES });
const gallery = (await readFile(join(dir, 'gallery.metricann'))).length;
const PHOTO_PATH = capture('coffee', join(await mkdtemp(join(tmpdir(), 'metricann-edge-')), 'coffee.jpg'));
const photo = await readFile(PHOTO_PATH);
const results = [];
for (const runtime of Object.keys(RUNTIMES)) {
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) rounds.push(await round(runtime, dir, photo));
  const summary = Object.fromEntries(Object.keys(rounds[0]).map((k) => [k, median(rounds.map((x) => x[k]))]));
  results.push({ runtime, ...summary, rounds });
  console.log(
    `${runtime}: ready ${summary.ready_ms.toFixed(0)} ms, first request ${summary.first_ms.toFixed(0)} ms, ` +
      `cold ${summary.cold_ms.toFixed(0)} ms, p50 ${summary.p50_ms.toFixed(1)} ms, RSS ${summary.rss_mb.toFixed(0)} MB`,
  );
}
const worker = workerUpload(dir);
console.log(`worker upload: ${JSON.stringify(worker)}`);
const memory = packageMemory(dir);
console.log(`the package's memory after import and a search: ${JSON.stringify(memory)}`);
const versions = Object.fromEntries(
  ['wrangler', 'deno', 'bun'].map((p) => [p, JSON.parse(execFileSync('npm', ['ls', p, '--json'], { cwd: join(ROOT, 'tests/edge'), encoding: 'utf8' })).dependencies?.[p]?.version]),
);
await writeFile(
  OUT,
  JSON.stringify(
    { date: new Date().toISOString(), machine: '2-core x86-64, this repository\'s dev machine', versions, gallery: { classes: 4 + EXTRA_CLASSES, bytes: gallery }, worker, memory, rounds: ROUNDS, runs: RUNS, results },
    null,
    2,
  ) + '\n',
);
console.log(`results: ${OUT}`);
