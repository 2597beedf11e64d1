// The package's threaded build in headless Chromium. A cross-origin isolated page
// (COOP + COEP) loads pkg/threads/ and builds graphs on a pool of Web Workers, in
// the page and in createWorker()'s worker; the same page served without the headers
// gets the single-threaded build. Both find every vector they were given.
import test from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { HERE, PKG, MODELS, serve, launch, openPage } from './lib.mjs';

const MODEL = '/models/default.bundle';
/** Past the growing segment's 1,024 vectors: optimize() builds one graph of them all. */
const N = 3000;

/** In the page: N seeded random vectors enrolled in batches, one graph built, every 29th searched. */
async function buildAndSearch(page, where) {
  return page.evaluate(
    async ([model, N, where]) => {
      const open = (opts) => (where === 'worker' ? h.createWorker().open(opts) : h.MetricAnn.open(opts));
      const ann = await open({ model, backend: 'cpu' });
      const { dim } = await ann.stats();
      let s = 777;
      const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
      const vectors = Array.from({ length: N }, () => Array.from({ length: dim }, rand));
      for (let i = 0; i < N; i += 1000) {
        await ann.enrollVectors(vectors.slice(i, i + 1000).map((v, j) => ({ label: `v${i + j}`, vectors: [v] })));
      }
      const started = performance.now();
      const built = await ann.optimize();
      const ms = performance.now() - started;
      const tops = [];
      for (let i = 0; i < N; i += 29) tops.push((await ann.searchVector(vectors[i], { k: 1 })).matches[0].label);
      await ann.close();
      return {
        supported: h.threadsSupported(),
        pageThreads: h.MetricAnn.threads,
        cores: navigator.hardwareConcurrency,
        threads: built.threads,
        kinds: built.segments.map((x) => x.kind),
        vectors: built.vectors,
        tops,
        ms,
      };
    },
    [MODEL, N, where],
  );
}

const wanted = Array.from({ length: Math.ceil(N / 29) }, (_, i) => `v${i * 29}`);

test('threads: isolated pages build on a Web Worker pool, other pages on one thread', async (t) => {
  const mounts = { '/pkg/': PKG, '/models/': MODELS, '/': join(HERE, 'pages') };
  const isolated = await serve(mounts, { isolated: true });
  const plain = await serve(mounts);
  const context = await launch();
  t.after(async () => {
    await context.close();
    await isolated.close();
    await plain.close();
  });

  await t.test('cross-origin isolated page: the threaded build, one graph, every vector found', async (t) => {
    const r = await buildAndSearch(await openPage(context, isolated.origin, 'isolated'), 'page');
    console.log(`# isolated page: ${r.threads} threads on ${r.cores} cores, optimize of ${N} vectors ${r.ms.toFixed(0)} ms`);
    assert.equal(r.supported, true, 'COOP + COEP make the page cross-origin isolated');
    if (r.cores < 2) {
      t.skip(`navigator.hardwareConcurrency is ${r.cores}: no pool to start`);
      return;
    }
    assert.equal(r.pageThreads, Math.min(r.cores, 16));
    assert.equal(r.threads, r.pageThreads, 'the gallery builds on the pool');
    assert.deepEqual(r.kinds, ['hnsw']);
    assert.equal(r.vectors, N);
    assert.deepEqual(r.tops, wanted);
  });

  await t.test('cross-origin isolated page, createWorker(): the worker starts its own pool', async (t) => {
    const r = await buildAndSearch(await openPage(context, isolated.origin, 'isolated-worker'), 'worker');
    console.log(`# isolated worker: ${r.threads} threads, optimize of ${N} vectors ${r.ms.toFixed(0)} ms`);
    if (r.cores < 2) {
      t.skip(`navigator.hardwareConcurrency is ${r.cores}: no pool to start`);
      return;
    }
    assert.equal(r.threads, Math.min(r.cores, 16));
    assert.deepEqual(r.kinds, ['hnsw']);
    assert.deepEqual(r.tops, wanted);
  });

  // The threaded build resumes a woken future a task later (Atomics.waitAsync):
  // an IndexedDB event already queued by then must have its listener attached.
  await t.test('cross-origin isolated page: a stored gallery opens every time, empty or not', async () => {
    const page = await openPage(context, isolated.origin, 'reopen');
    const r = await page.evaluate(async (model) => {
      const opens = [];
      for (let i = 0; i < 40; i++) {
        const started = performance.now();
        const opened = h.MetricAnn.open({ model, gallery: 'reopen', backend: 'cpu' });
        const timeout = new Promise((resolve) => setTimeout(() => resolve(null), 15_000));
        const ann = await Promise.race([opened, timeout]);
        if (!ann) return { opens, hung: i };
        if (i === 20) await ann.enrollVectors([{ label: 'one', vectors: [Array.from({ length: (await ann.stats()).dim }, (_, j) => (j % 7) - 3)] }]);
        opens.push(performance.now() - started);
        await ann.close();
      }
      return { opens, hung: null, threads: h.MetricAnn.threads };
    }, MODEL);
    console.log(`# ${r.opens.length} opens on ${r.threads} threads, the slowest ${Math.max(...r.opens).toFixed(0)} ms`);
    assert.equal(r.hung, null, `open ${r.hung} never settled`);
    assert.equal(r.opens.length, 40);
  });

  await t.test('page without the headers: the single-threaded build, the same answers', async () => {
    const r = await buildAndSearch(await openPage(context, plain.origin, 'plain'), 'page');
    console.log(`# plain page: ${r.threads} thread, optimize of ${N} vectors ${r.ms.toFixed(0)} ms`);
    assert.equal(r.supported, false);
    assert.equal(r.pageThreads, 1);
    assert.equal(r.threads, 1);
    assert.deepEqual(r.kinds, ['hnsw']);
    assert.deepEqual(r.tops, wanted);
  });

  await t.test("threads: 1 on an isolated page keeps the single-threaded build; a bad count is BAD_INPUT", async () => {
    const page = await openPage(context, isolated.origin, 'one');
    const r = await page.evaluate(async () => {
      const bad = await h.attempt(() => h.initialize(undefined, { threads: 0 }));
      await h.initialize(undefined, { threads: 1 });
      return { bad, threads: h.MetricAnn.threads };
    });
    assert.equal(r.bad.ok, false);
    assert.equal(r.bad.error.code, 'BAD_INPUT');
    assert.equal(r.threads, 1);
  });

  await t.test('a wasm source given without threads is the single-threaded build, even on an isolated page', async () => {
    const page = await openPage(context, isolated.origin, 'given');
    const r = await page.evaluate(async (model) => {
      await h.initialize('/pkg/metricann_bg.wasm');
      const ann = await h.MetricAnn.open({ model, backend: 'cpu' });
      const stats = await ann.stats();
      await ann.close();
      return { supported: h.threadsSupported(), threads: h.MetricAnn.threads, stats: stats.threads };
    }, MODEL);
    assert.deepEqual(r, { supported: true, threads: 1, stats: 1 });
  });
});
