// In-page steps of the browser ANN benchmark (ann.mjs): the same clustered
// unit vectors through our package and through hnswlib-wasm, one library per
// browser, each timed the way an app would use it (build, search, enroll and
// persist to IndexedDB, reopen from IndexedDB).
import { MetricAnn, initialize } from '/pkg/index.js';

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const summary = (xs) => ({ p50: pct(xs, 50), p95: pct(xs, 95), mean: xs.reduce((a, b) => a + b, 0) / xs.length, n: xs.length });

function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    // xorshift32: fast and deterministic, so both libraries see the same data.
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 2 ** 32;
  };
}
function gauss(r) {
  return Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
}
function normalise(v) {
  let n = 0;
  for (const x of v) n += x * x;
  n = Math.sqrt(n);
  for (let i = 0; i < v.length; i++) v[i] /= n;
  return v;
}

/**
 * `n` base rows, `extra` rows to enroll later and `nq` queries: unit vectors in
 * clusters of `perCluster` around random centres (as bench/ann_vs_hnswlib.py
 * draws them), plus the exact top-`k` of every query over the base rows.
 */
function data({ n, extra, nq, dim, perCluster, spread, seed, k }) {
  // One stream per part, so that a reopen draws the same queries without the
  // rows enrolled after the build.
  const [rBase, rMore, rQueries] = [seed, seed + 1, seed + 2].map(rng);
  const clusters = Math.max(1, Math.ceil(n / perCluster));
  const centres = [];
  for (let c = 0; c < clusters; c++) centres.push(normalise(Float32Array.from({ length: dim }, () => gauss(rBase))));
  const near = (r) => () => {
    const c = centres[Math.floor(r() * clusters)];
    const s = spread / Math.sqrt(dim);
    return normalise(c.map((x) => x + s * gauss(r)));
  };
  const base = Array.from({ length: n }, near(rBase));
  const more = Array.from({ length: extra }, near(rMore));
  const queries = Array.from({ length: nq }, near(rQueries));
  const truth = queries.map((q) => {
    const best = [];
    for (let i = 0; i < n; i++) {
      const v = base[i];
      let d = 0;
      for (let j = 0; j < dim; j++) d += q[j] * v[j];
      if (best.length < k || d > best[best.length - 1][0]) {
        best.push([d, i]);
        best.sort((a, b) => b[0] - a[0]);
        if (best.length > k) best.pop();
      }
    }
    return best.map((b) => b[1]);
  });
  return { base, more, queries, truth };
}

function recall(found, truth) {
  let hit = 0;
  for (let i = 0; i < truth.length; i++) {
    const t = new Set(truth[i]);
    hit += found[i].filter((x) => t.has(x)).length;
  }
  return hit / (truth.length * truth[0].length);
}

/** Searches every query, timing each; returns latency and recall@k. */
async function searches(queries, truth, search) {
  const t = [];
  const found = [];
  for (const q of queries) {
    const t0 = performance.now();
    const ids = await search(q);
    t.push(performance.now() - t0);
    found.push(ids);
  }
  return { ...summary(t), recall: recall(found, truth) };
}

/** Enrolls each row of `rows` and persists it; the time of each. */
async function enrolls(rows, enrollOne) {
  const t = [];
  for (let i = 0; i < rows.length; i++) {
    const t0 = performance.now();
    await enrollOne(rows[i], i);
    t.push(performance.now() - t0);
  }
  return summary(t);
}

const jsHeap = () => {
  // The size of every wasm memory is not exposed; the renderer's RSS (read by
  // the driver from /proc) is the figure to compare. This is the JS heap.
  const m = performance.memory;
  return m ? m.usedJSHeapSize : null;
};

/** What the origin keeps in IndexedDB, as the browser counts it (both libraries store there). */
/** Reads every record of one object store with getAll; returns their bytes. */
async function readAllRecords(dbName, storeName) {
  const db = await new Promise((resolve, reject) => {
    const req = indexedDB.open(dbName);
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  const values = await new Promise((resolve, reject) => {
    const req = db.transaction(storeName, 'readonly').objectStore(storeName).getAll();
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  db.close();
  // Large records are Blobs: their bytes are read too, as the package does.
  const buffers = await Promise.all(values.map((v) => (v instanceof Blob ? v.arrayBuffer() : v)));
  return buffers.reduce((n, v) => n + (v.byteLength ?? 0), 0);
}

async function storedBytes() {
  const { usage } = await navigator.storage.estimate();
  return usage;
}

// ---- ours ----

export async function oursDim({ model }) {
  const ann = await MetricAnn.open({ model, backend: 'cpu' });
  const { dim } = await ann.stats();
  await ann.close();
  return dim;
}

export async function oursBuild(a) {
  const { base, more, queries, truth } = data(a);
  await initialize(undefined, { threads: a.threads ?? 1 });
  await MetricAnn.deleteGallery(a.gallery);
  const ann = await MetricAnn.open({ model: a.model, gallery: a.gallery, backend: 'cpu' });
  const t0 = performance.now();
  for (let at = 0; at < base.length; at += a.batch) {
    const entries = [];
    for (let i = at; i < Math.min(base.length, at + a.batch); i++) entries.push({ label: `v${i}`, vectors: [base[i]] });
    await ann.enrollVectors(entries);
  }
  while (await ann.maintain()) {}
  const buildMs = performance.now() - t0;
  const search = await searches(queries, truth, async (q) =>
    (await ann.searchVector(q, { k: a.k })).matches.map((m) => Number(m.label.slice(1))),
  );
  const enroll = await enrolls(more, (v, i) => ann.enrollVectors([{ label: `new${i}`, vectors: [v] }]));
  while (await ann.maintain()) {}
  const stats = await ann.stats();
  await ann.close();
  return {
    buildMs,
    search,
    enroll,
    stored: await storedBytes(),
    segments: stats.segments.length,
    vectors: stats.vectors,
    threads: stats.threads,
    jsHeap: jsHeap(),
  };
}

/**
 * The queries and their exact top-k: generated (data()), or, for an imported
 * index, fetched from the files bench/browser_import.py wrote (`a.files`).
 */
async function queriesOf(a) {
  if (!a.files) return data({ ...a, extra: 0 });
  const f32 = async (name) => new Float32Array(await (await fetch(`${a.files}/${name}`)).arrayBuffer());
  const rows = (flat, width) => Array.from({ length: flat.length / width }, (_, i) => flat.subarray(i * width, (i + 1) * width));
  const queries = rows(await f32('queries.f32'), a.dim);
  const gt = new Uint32Array(await (await fetch(`${a.files}/gt.u32`)).arrayBuffer());
  const truth = rows(gt, a.k).map((r) => Array.from(r));
  return { queries, truth };
}

async function fetchBytes(url) {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
}

/**
 * Ours, from a natively built export (`metricann export`): MetricAnn.import
 * into IndexedDB (decoded, checked and committed), then search and enroll.
 */
export async function oursImport(a) {
  const { queries, truth } = await queriesOf(a);
  const more = await (async () => {
    const flat = new Float32Array(await (await fetch(`${a.files}/extra.f32`)).arrayBuffer());
    return Array.from({ length: a.extra }, (_, i) => flat.subarray(i * a.dim, (i + 1) * a.dim));
  })();
  await MetricAnn.deleteGallery(a.gallery);
  let t0 = performance.now();
  const bytes = await fetchBytes(`${a.files}/${a.export}`);
  const fetchMs = performance.now() - t0;
  t0 = performance.now();
  const ann = await MetricAnn.import(bytes, { model: a.model, gallery: a.gallery, backend: 'cpu' });
  const importMs = performance.now() - t0;
  const stats = await ann.stats();
  const search = await searches(queries, truth, async (q) =>
    (await ann.searchVector(q, { k: a.k })).matches.map((m) => Number(m.label.slice(1))),
  );
  const enroll = await enrolls(more, (v, i) => ann.enrollVectors([{ label: `new${i}`, vectors: [v] }]));
  await ann.close();
  return {
    fetchMs,
    importMs,
    search,
    enroll,
    stored: await storedBytes(),
    segments: stats.segments.length,
    vectors: stats.vectors,
    memoryBytes: stats.memoryBytes,
    quantization: stats.quantization,
    jsHeap: jsHeap(),
  };
}

export async function oursReopen(a) {
  const { queries, truth } = await queriesOf(a);
  await initialize(undefined, { threads: a.threads ?? 1 });
  // Our reopen loads the model too (hnswlib has none): timed alone first.
  let t0 = performance.now();
  await (await MetricAnn.open({ model: a.model, backend: 'cpu' })).close();
  const modelMs = performance.now() - t0;
  // What IndexedDB alone takes to hand over the stored records (the
  // reload's floor), read the way the package reads them: getAll.
  t0 = performance.now();
  const idbBytes = await readAllRecords(`metricann:${a.gallery}`, 'blobs');
  const idbReadMs = performance.now() - t0;
  t0 = performance.now();
  const ann = await MetricAnn.open({ model: a.model, gallery: a.gallery, backend: 'cpu' });
  const reloadMs = performance.now() - t0;
  const stats = await ann.stats();
  const search = await searches(queries, truth, async (q) =>
    (await ann.searchVector(q, { k: a.k })).matches.map((m) => Number(m.label.slice(1))),
  );
  await ann.close();
  if (!a.keep) await MetricAnn.deleteGallery(a.gallery);
  return { reloadMs, modelMs, idbReadMs, idbBytes, vectors: stats.vectors, search };
}

// ---- hnswlib-wasm ----

const FILE = 'ann-bench.dat';

async function hnswlib() {
  const { loadHnswlib, syncFileSystem } = await import('/hnswlib/hnswlib.js');
  return { lib: await loadHnswlib(), syncFileSystem };
}

export async function hnswBuild(a) {
  const { base, more, queries, truth } = data(a);
  const { lib, syncFileSystem } = await hnswlib();
  const t0 = performance.now();
  const index = new lib.HierarchicalNSW('cosine', a.dim, '');
  index.initIndex(a.n + a.extra, a.m, a.efConstruction, a.seed);
  for (let at = 0; at < base.length; at += a.batch) {
    const rows = base.slice(at, at + a.batch);
    index.addPoints(rows, rows.map((_, j) => at + j), false);
  }
  await index.writeIndex(FILE);
  await syncFileSystem('write');
  const buildMs = performance.now() - t0;
  index.setEfSearch(a.ef);
  const search = await searches(queries, truth, async (q) => Array.from(index.searchKnn(q, a.k, undefined).neighbors));
  // hnswlib persists whole files: an enrollment rewrites the index.
  const enroll = await enrolls(more, async (v, i) => {
    index.addPoint(v, a.n + i, false);
    await index.writeIndex(FILE);
    await syncFileSystem('write');
  });
  return { buildMs, search, enroll, stored: await storedBytes(), vectors: index.getCurrentCount(), jsHeap: jsHeap() };
}

/**
 * hnswlib-wasm, from a natively built `save_index` file. Its file system is
 * not exported, so the file goes where its IDBFS sync keeps files: a record
 * in the `/hnswlib-index` database, as the sync itself writes it. Then the
 * steps of an app: load it into the index, search, enroll + persist.
 */
/** Runs `step`, turning hnswlib's C++ exceptions into errors that say what failed. */
async function cxx(lib, what, step) {
  try {
    return await step();
  } catch (e) {
    const detail = e instanceof WebAssembly.Exception && lib.getExceptionMessage ? lib.getExceptionMessage(e).join(': ') : String(e);
    throw new Error(`hnswlib-wasm, ${what}: ${detail}`);
  }
}

export async function hnswImport(a) {
  const { queries, truth } = await queriesOf(a);
  const flat = new Float32Array(await (await fetch(`${a.files}/extra.f32`)).arrayBuffer());
  const more = Array.from({ length: a.extra }, (_, i) => Array.from(flat.subarray(i * a.dim, (i + 1) * a.dim)));
  let t0 = performance.now();
  const bytes = await fetchBytes(`${a.files}/hnswlib-wasm32.bin`);
  const fetchMs = performance.now() - t0;
  t0 = performance.now();
  const { lib, syncFileSystem } = await hnswlib();
  await syncFileSystem('write'); // creates the database
  const db = await new Promise((resolve, reject) => {
    const req = indexedDB.open('/hnswlib-index');
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
  await new Promise((resolve, reject) => {
    const tx = db.transaction('FILE_DATA', 'readwrite');
    tx.objectStore('FILE_DATA').put(
      { timestamp: new Date(), mode: 33206, contents: new Int8Array(bytes.buffer, bytes.byteOffset, bytes.length) },
      `/hnswlib-index/${FILE}`,
    );
    tx.oncomplete = resolve;
    tx.onerror = () => reject(tx.error);
  });
  db.close();
  await syncFileSystem('read');
  const index = new lib.HierarchicalNSW('cosine', a.dim, '');
  await cxx(lib, 'readIndex', () => index.readIndex(FILE, a.n + a.extra));
  const importMs = performance.now() - t0;
  index.setEfSearch(a.ef);
  const search = await cxx(lib, 'search', () =>
    searches(queries, truth, async (q) => Array.from(index.searchKnn(q, a.k, undefined).neighbors)),
  );
  const enroll = await cxx(lib, 'enroll', () =>
    enrolls(more, async (v, i) => {
      index.addPoint(v, a.n + i, false);
      await index.writeIndex(FILE);
      await syncFileSystem('write');
    }),
  );
  return { fetchMs, importMs, search, enroll, stored: await storedBytes(), vectors: index.getCurrentCount(), jsHeap: jsHeap() };
}

export async function hnswReopen(a) {
  const { queries, truth } = await queriesOf(a);
  const t0 = performance.now();
  const { lib, syncFileSystem } = await hnswlib();
  await syncFileSystem('read');
  const index = new lib.HierarchicalNSW('cosine', a.dim, '');
  await index.readIndex(FILE, a.n + a.extra);
  const reloadMs = performance.now() - t0;
  index.setEfSearch(a.ef);
  const search = await searches(queries, truth, async (q) => Array.from(index.searchKnn(q, a.k, undefined).neighbors));
  return { reloadMs, vectors: index.getCurrentCount(), search };
}
