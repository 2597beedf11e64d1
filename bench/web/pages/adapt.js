// In-page step of the adaptation benchmark, driven by bench/web/adapt.mjs: one
// gallery of `shots` enrollment images a class, top-1 of the class's camera-like
// queries before and after adapt(), its time and the wasm memory it took.
import init from '/pkg/metricann.js';
import { MetricAnn } from '/pkg/index.js';

async function bytes(url) {
  return new Uint8Array(await (await fetch(url)).arrayBuffer());
}

async function top1(ann, classes) {
  let right = 0;
  let n = 0;
  for (const c of classes) {
    for (const q of c.queries) {
      const r = await ann.search(await bytes(q), { k: 1, threshold: -1 });
      right += r.matches[0]?.label === c.label ? 1 : 0;
      n += 1;
    }
  }
  return { top1: right / n, queries: n };
}

/** `classes`: [{ label, enroll: [url], queries: [url] }]. */
export async function run({ model, backend, classes, shots, options }) {
  const ann = await MetricAnn.open({ model, backend });
  // The module is instantiated once: init() hands back its exports, memory included.
  const { memory } = await init();
  const t0 = performance.now();
  for (const c of classes) {
    const images = [];
    for (const u of c.enroll.slice(0, shots)) images.push(await bytes(u));
    await ann.enroll(c.label, images, { keepImages: true });
  }
  const enrollSeconds = (performance.now() - t0) / 1e3;
  const before = await top1(ann, classes);
  const memoryBefore = memory.buffer.byteLength;
  const t1 = performance.now();
  const result = await ann.adapt(options);
  const adaptSeconds = (performance.now() - t1) / 1e3;
  const memoryAfter = memory.buffer.byteLength;
  const after = await top1(ann, classes);
  const stats = await ann.stats();
  await ann.close();
  return {
    backend: stats.backend,
    enrollSeconds,
    adaptSeconds,
    before: before.top1,
    after: after.top1,
    queries: before.queries,
    result,
    wasmMemoryBefore: memoryBefore,
    wasmMemoryAfter: memoryAfter,
    jsHeap: performance.memory?.usedJSHeapSize ?? null,
  };
}
