// In-page benchmark steps, driven by bench.mjs.
import { MetricAnn } from '/pkg/index.js';
import { input } from '/helpers.js';

const pct = (xs, p) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};
const summary = (xs) => ({ p50: pct(xs, 50), p95: pct(xs, 95), n: xs.length });

function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s * 1664525 + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}
function unit(r, dim) {
  const v = new Float32Array(dim);
  let n = 0;
  for (let i = 0; i < dim; i++) {
    // Box–Muller
    const x = Math.sqrt(-2 * Math.log(r() + 1e-12)) * Math.cos(2 * Math.PI * r());
    v[i] = x;
    n += x * x;
  }
  n = Math.sqrt(n);
  for (let i = 0; i < dim; i++) v[i] /= n;
  return v;
}

export async function embed({ model, backend, url, runs }) {
  const ann = await MetricAnn.open({ model, backend });
  const img = await input(url);
  await ann.embed(img);
  const t = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await ann.embed(img);
    t.push(performance.now() - t0);
  }
  const stats = await ann.stats();
  await ann.close();
  return { backend: stats.backend, ...summary(t) };
}

/** `n` random vectors as n / perClass classes (each a cluster around a random centre). */
export async function build({ model, gallery, n, batch, perClass }) {
  await MetricAnn.deleteGallery(gallery);
  const ann = await MetricAnn.open({ model, gallery, backend: 'cpu' });
  const dim = (await ann.stats()).dim;
  const r = rng(n);
  const classes = Math.ceil(n / perClass);
  const t0 = performance.now();
  for (let done = 0; done < classes; done += batch) {
    const entries = [];
    for (let c = done; c < Math.min(classes, done + batch); c++) {
      const centre = unit(r, dim);
      const vectors = [];
      for (let j = 0; j < perClass; j++) {
        const noise = unit(r, dim);
        const v = centre.map((x, d) => x + 0.3 * noise[d]);
        vectors.push(v);
      }
      entries.push({ label: `c${c}`, vectors });
    }
    await ann.enrollVectors(entries);
    while (await ann.maintain()) {}
  }
  const ms = performance.now() - t0;
  const stats = await ann.stats();
  await ann.close();
  return { ms, classes: stats.classes, vectors: stats.vectors, segments: stats.segments.length, bytes: stats.bytes };
}

export async function ops({ model, gallery, url, runs }) {
  const t0 = performance.now();
  const ann = await MetricAnn.open({ model, gallery, backend: 'cpu' });
  const open = performance.now() - t0;
  const dim = (await ann.stats()).dim;
  const r = rng(7);
  const search = [];
  for (let i = 0; i < runs; i++) {
    const q = unit(r, dim);
    const s0 = performance.now();
    await ann.searchVector(q, { k: 5 });
    search.push(performance.now() - s0);
  }
  const img = await input(url);
  const searchImage = [];
  for (let i = 0; i < runs; i++) {
    const s0 = performance.now();
    await ann.search(img, { k: 5 });
    searchImage.push(performance.now() - s0);
  }
  const enroll = [];
  for (let i = 0; i < Math.min(runs, 30); i++) {
    const s0 = performance.now();
    await ann.enroll(`new-${i}`, img);
    enroll.push(performance.now() - s0);
  }
  for (let i = 0; i < Math.min(runs, 30); i++) await ann.remove(`new-${i}`);
  await ann.close();
  return { open, search: summary(search), searchImage: summary(searchImage), enroll: summary(enroll) };
}
