// Browser ANN benchmark (not part of `make test`): our package against
// hnswlib-wasm (npm) in headless Chromium, on the same clustered unit vectors
// of the model's dimension. Per size and library, in a fresh browser: build
// (our enrollVectors in batches + maintenance, committed to IndexedDB; their
// addPoints + writeIndex + IDBFS sync), search p50/p95 and recall@k against
// exact search, enroll + persist of one vector, then reopen from IndexedDB in
// a fresh page and search again; the renderer's peak RSS.
//
//   node ann.mjs [--sizes 10000,100000] [--queries 200] [--enrolls 30]
//   node ann.mjs --import DIR [--skip-hnswlib]   (indexes built natively by
//                                                  bench/browser_import.py)
//   --reloads N: reopen N times, each in a fresh page; the median is reported
//   --profile FILE.cpuprofile: each reopen's CPU profile (FILE-1.cpuprofile ...
//                   with --reloads), to see where a reload's time goes
//   --threads auto|N: our side on a cross-origin isolated page (COOP + COEP), the
//                   package's threaded build with that many Web Workers; 1 (the
//                   default) is the single-threaded build on a plain page.
//                   hnswlib-wasm has no threads: it runs on the same page either way.
//   --skip-hnswlib: ours only (the peer's figures of another run stand).
//
// Writes bench/results/browser-ann-<n>x<dim>-t<threads>.json
// (browser-ann-import-<n>.json) and prints a table.
import { readFile, writeFile, readdir, mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HERE, ROOT, PKG, MODELS, serve, launch, benchPage, BASE_ARGS, flag } from '../../tests/web/lib.mjs';

/** This folder: the in-page benchmark modules are under pages/, served at /bench/. */
const BENCH = fileURLToPath(new URL('.', import.meta.url));

const SIZES = flag('sizes', '10000,100000').split(',').map(Number);
const RELOADS = Math.max(1, Number(flag('reloads', '1')));
const PROFILE = flag('profile', null);
const common = {
  model: '/models/default.bundle',
  nq: Number(flag('queries', '200')),
  extra: Number(flag('enrolls', '30')),
  k: 10,
  perCluster: 100,
  spread: 1.5,
  seed: 1,
  batch: 1000,
  // hnswlib's parameters, set to ours (the gallery's M 16, efConstruction 100, ef 64).
  m: 16,
  efConstruction: 100,
  ef: 64,
};

const HNSWLIB = join(HERE, 'node_modules/hnswlib-wasm/dist');
const hnswVersion = JSON.parse(await readFile(join(HERE, 'node_modules/hnswlib-wasm/package.json'), 'utf8')).version;
const mounts = { '/pkg/': PKG, '/models/': MODELS, '/hnswlib/': HNSWLIB, '/bench/': join(BENCH, 'pages'), '/': join(HERE, 'pages') };
if (flag('import', null)) mounts['/data/'] = flag('import', null);
const THREADS = flag('threads', '1') === 'auto' ? 'auto' : Number(flag('threads', '1'));
common.threads = THREADS;
const server = await serve(mounts, { isolated: THREADS !== 1 });

const SKIP_HNSWLIB = process.argv.includes('--skip-hnswlib');

/** hnswlib-wasm's figures in the result file `out` of an earlier run, saying when they are from; null without. */
async function earlierPeer(out) {
  const earlier = await readFile(out, 'utf8').then(JSON.parse, () => null);
  if (!earlier?.hnswlib) return null;
  return { ...earlier.hnswlib, from: earlier.hnswlib.from ?? earlier.when ?? 'an earlier run' };
}

/** Peak and current RSS of Chromium's renderer processes (one page is open). */
async function rendererMemory() {
  let peak = 0;
  let now = 0;
  for (const pid of await readdir('/proc')) {
    if (!/^\d+$/.test(pid)) continue;
    try {
      const cmd = await readFile(`/proc/${pid}/cmdline`, 'utf8');
      if (!cmd.includes('--type=renderer')) continue;
      const status = await readFile(`/proc/${pid}/status`, 'utf8');
      const kb = (key) => Number((status.match(new RegExp(`${key}:\\s+(\\d+)`)) ?? [0, 0])[1]) * 1024;
      peak = Math.max(peak, kb('VmHWM'));
      now = Math.max(now, kb('VmRSS'));
    } catch {
      // The process ended meanwhile.
    }
  }
  return { peakRss: peak, rss: now };
}

const page = (context) => benchPage(context, server.origin, '/bench/ann.js', 'ann');

/** One library at one size, in its own browser. */
async function side(build, reopen, a) {
  const ctx = await launch(BASE_ARGS);
  try {
    let p = await page(ctx);
    const built = await p.evaluate(({ fn, a }) => window.ann[fn](a), { fn: build, a });
    const memory = await rendererMemory();
    await p.close();
    // A reload is one fresh page; its time varies from run to run on a
    // shared machine, so `--reloads N` repeats it and reports the median.
    const runs = [];
    for (let i = 0; i < RELOADS; i++) {
      p = await page(ctx);
      const profile = PROFILE ? await ctx.newCDPSession(p) : null;
      if (profile) {
        await profile.send('Profiler.enable');
        await profile.send('Profiler.setSamplingInterval', { interval: 200 });
        await profile.send('Profiler.start');
      }
      runs.push(await p.evaluate(({ fn, a }) => window.ann[fn](a), { fn: reopen, a: { ...a, keep: i < RELOADS - 1 } }));
      if (profile) {
        const { profile: taken } = await profile.send('Profiler.stop');
        const file = RELOADS > 1 ? PROFILE.replace(/(\.cpuprofile)?$/, `-${i + 1}$1`) : PROFILE;
        await writeFile(file, JSON.stringify(taken));
        console.log(`wrote ${file} (reload ${i + 1}'s CPU profile; open it in Chrome's DevTools)`);
      }
      await p.close();
    }
    const times = runs.map((r) => r.reloadMs).sort((x, y) => x - y);
    const reopened = { ...runs[runs.length - 1], reloadMs: times[(times.length - 1) >> 1], reloadRuns: runs.map((r) => r.reloadMs) };
    return { ...built, memory, reopen: reopened };
  } finally {
    await ctx.close();
  }
}

/**
 * `--import DIR`: indexes built natively by bench/browser_import.py (sizes a
 * tab cannot build in reasonable time), imported by each library, then the
 * same search, enroll and reload steps.
 */
async function importRun(dir) {
  const meta = JSON.parse(await readFile(join(dir, 'meta.json'), 'utf8'));
  const files = await readdir(dir);
  const exports = files.filter((f) => /^metricann-.*\.export$/.test(f)).sort();
  const a = {
    model: '/models/default.bundle',
    files: '/data',
    n: meta.n,
    dim: meta.dim,
    k: meta.k,
    ef: meta.ef,
    extra: meta.extra,
    m: meta.m,
    efConstruction: meta.efConstruction,
  };
  const out = join(ROOT, `bench/results/browser-ann-import-${meta.n}x${meta.dim}.json`);
  const report = { params: a, data: meta.data, native: meta, metricann: {} };
  if (SKIP_HNSWLIB) {
    const earlier = await earlierPeer(out);
    if (earlier) report.hnswlib = earlier;
  }
  report.when = new Date().toISOString();
  const save = async () => {
    await mkdir(join(ROOT, 'bench/results'), { recursive: true });
    await writeFile(out, JSON.stringify(report, null, 1));
  };
  for (const file of exports) {
    const storage = file.replace(/^metricann-|\.export$/g, '');
    const ours = await side('oursImport', 'oursReopen', { ...a, export: file, gallery: `ann-import-${storage}` });
    console.log(`metricann ${storage} ${meta.n}:`, JSON.stringify(ours));
    report.metricann[storage] = ours;
    await save();
  }
  if (files.includes('hnswlib-wasm32.bin') && !SKIP_HNSWLIB) {
    // Each enrollment rewrites the whole file: a few are enough.
    const theirs = await side('hnswImport', 'hnswReopen', { ...a, extra: Math.min(a.extra, 3) });
    console.log(`hnswlib-wasm ${meta.n}:`, JSON.stringify(theirs));
    report.hnswlib = { version: hnswVersion, ...theirs };
    await save();
  }
  console.log(`wrote ${out}`);
}

const importDir = flag('import', null);
if (importDir) {
  try {
    await importRun(importDir);
  } finally {
    await server.close();
  }
  process.exit(0);
}

const results = {};
try {
  const probe = await launch(BASE_ARGS);
  const dim = await (await page(probe)).evaluate((a) => window.ann.oursDim(a), common);
  await probe.close();
  for (const n of SIZES) {
    const a = { ...common, n, dim, gallery: `ann-bench-${n}` };
    const ours = await side('oursBuild', 'oursReopen', a);
    console.log(`metricann ${n} (threads ${ours.threads}):`, JSON.stringify(ours));
    const out = join(ROOT, `bench/results/browser-ann-${n}x${dim}-t${ours.threads}.json`);
    let theirs;
    if (SKIP_HNSWLIB) {
      theirs = await earlierPeer(out);
    } else {
      // Fewer enrollments for hnswlib: each one rewrites the whole index file.
      theirs = { version: hnswVersion, ...(await side('hnswBuild', 'hnswReopen', { ...a, extra: Math.min(a.extra, 10) })) };
      console.log(`hnswlib-wasm ${n}:`, JSON.stringify(theirs));
    }
    results[n] = { when: new Date().toISOString(), params: a, metricann: ours, hnswlib: theirs ?? null };
    await mkdir(join(ROOT, 'bench/results'), { recursive: true });
    await writeFile(out, JSON.stringify(results[n], null, 1));
  }
} finally {
  await server.close();
}

const ms = (x) => (x < 10 ? x.toFixed(2) : x.toFixed(0));
const rows = ['| vectors | measure | metricann | hnswlib-wasm ' + hnswVersion + ' | ratio (ours ÷ theirs) |', '| --- | --- | --- | --- | --- |'];
for (const [n, r] of Object.entries(results)) {
  const o = r.metricann;
  const t = r.hnswlib;
  if (!t) continue;
  rows.push(`| ${n} | our threads (Web Workers) | ${o.threads} | 1 | |`);
  const pair = (what, x, y, fmt) => rows.push(`| ${n} | ${what} | ${fmt(x)} | ${fmt(y)} | ${(x / y).toFixed(2)} |`);
  pair('build (s)', o.buildMs / 1e3, t.buildMs / 1e3, (x) => x.toFixed(1));
  pair(`search p50 (ms), ef ${common.ef}`, o.search.p50, t.search.p50, ms);
  pair('search p95 (ms)', o.search.p95, t.search.p95, ms);
  pair(`recall@${common.k}`, o.search.recall, t.search.recall, (x) => x.toFixed(3));
  pair('enroll + persist p50 (ms)', o.enroll.p50, t.enroll.p50, ms);
  pair('enroll + persist p95 (ms)', o.enroll.p95, t.enroll.p95, ms);
  pair('reload from IndexedDB (s)', o.reopen.reloadMs / 1e3, t.reopen.reloadMs / 1e3, (x) => x.toFixed(2));
  rows.push(`| ${n} | the model alone, opened just before (s) | ${(o.reopen.modelMs / 1e3).toFixed(2)} | — | |`);
  rows.push(`| ${n} | IndexedDB getAll of the same records alone (s) | ${(o.reopen.idbReadMs / 1e3).toFixed(2)} | — | |`);
  pair('search p50 after reload (ms)', o.reopen.search.p50, t.reopen.search.p50, ms);
  pair('renderer peak RSS (MB)', o.memory.peakRss / 1e6, t.memory.peakRss / 1e6, (x) => x.toFixed(0));
  if (o.stored && t.stored) pair('stored (MB)', o.stored / 1e6, t.stored / 1e6, (x) => x.toFixed(1));
}
console.log(`\n${rows.join('\n')}`);
