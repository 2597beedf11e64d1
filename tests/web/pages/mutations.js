// The mutations tests/web/faults.test.mjs stops at each write, and what it
// compares before and after: the gallery as its user sees it.
import { MetricAnn, input } from './helpers.js';

export const MODEL = '/models/default.bundle';
const OPEN = { model: MODEL, backend: 'cpu' };

/** A unit vector that depends only on `label` (FNV-1a seeding mulberry32). */
export function vectorOf(label, dim) {
  let seed = 2166136261;
  for (const ch of label) seed = Math.imul(seed ^ ch.codePointAt(0), 16777619);
  const v = new Float32Array(dim);
  let norm = 0;
  for (let i = 0; i < dim; i++) {
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    v[i] = ((t ^ (t >>> 14)) >>> 0) / 4294967296 - 0.5;
    norm += v[i] * v[i];
  }
  return v.map((x) => x / Math.sqrt(norm));
}

const entries = (labels, dim) => labels.map((label) => ({ label, vectors: [vectorOf(label, dim)], metadata: { label } }));
export const vectorLabels = (prefix, n) => Array.from({ length: n }, (_, i) => `${prefix}${String(i).padStart(4, '0')}`);

function toBase64(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 0x8000) s += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(s);
}
const fromBase64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));

/**
 * The starting galleries, as export files (base64): `vectors`, classes of one
 * vector each enrolled in batches (several growing chunks and class pages),
 * and `images`, fixture classes that kept their images (reembed, adapt).
 */
export async function makeBases(fixture) {
  const vectors = await MetricAnn.open({ ...OPEN, gallery: 'fault-base-vectors' });
  const dim = (await vectors.stats()).dim;
  const labels = vectorLabels('v', 240);
  for (let i = 0; i < labels.length; i += 16) await vectors.enrollVectors(entries(labels.slice(i, i + 16), dim));
  const images = await MetricAnn.open({ ...OPEN, gallery: 'fault-base-images' });
  for (const [label, urls] of fixture) await images.enroll(label, await input(urls[0]), { keepImages: true, metadata: { label } });
  await images.enroll(fixture[0][0], await input(fixture[0][1][1]), { keepImages: true });
  const out = {};
  for (const [name, ann] of [['vectors', vectors], ['images', images]]) {
    const stats = await ann.stats();
    out[name] = { file: toBase64(await ann.export({ format: 'bytes' })), classes: stats.classes, segments: stats.segments.length, needsMaintenance: stats.needsMaintenance };
    await ann.close();
  }
  await MetricAnn.deleteGallery('fault-base-vectors');
  await MetricAnn.deleteGallery('fault-base-images');
  return { ...out, dim };
}

/** Gallery `gallery` from a base export, open for writing, with its maintenance done. */
export async function startFrom(base, gallery) {
  const ann = await MetricAnn.import(fromBase64(base), { ...OPEN, gallery, overwrite: true });
  await maintainAll(ann);
  return ann;
}

/** Gallery `gallery` from an export, open for writing, its pending maintenance left to do. */
export function startPending(file, gallery) {
  return MetricAnn.import(fromBase64(file), { ...OPEN, gallery, overwrite: true });
}

/** Runs maintenance until there is none left; fails when it never ends. */
export async function maintainAll(ann) {
  for (let rounds = 0; await ann.maintain(); rounds++) {
    if (rounds === 20) {
      const { segments, needsMaintenance } = await ann.stats();
      throw new Error(`maintain() still finds work after 20 rounds: ${JSON.stringify({ segments, needsMaintenance })}`);
    }
  }
}

/**
 * What a user can see of the gallery (classes, counts, the top match of probe
 * vectors) and how it is stored (its segments).
 */
export async function snapshot(ann, dim, probes) {
  const stats = await ann.stats();
  const classes = (await ann.classes()).map((c) => [c.label, c.examples, JSON.stringify(c.metadata), c.hasImages]).sort();
  const tops = [];
  for (const label of probes) {
    const r = await ann.searchVector(vectorOf(label, dim), { k: 1, threshold: -1 });
    tops.push(r.matches[0]?.label ?? null);
  }
  const segments = stats.segments.map((seg) => `${seg.name} ${seg.kind} ${seg.vectors}`);
  return { classes, vectors: stats.vectors, segments, quantization: stats.quantization, adapted: stats.adapted, fingerprint: stats.fingerprint, tops, damaged: stats.damaged.length };
}

/**
 * Each mutation: its starting gallery and what it does to `ann` (an open,
 * writable gallery named `gallery`); `import` replaces it from another export.
 * `ann.maintain()` after each runs the maintenance the mutation scheduled, so
 * that its writes are counted too. `same`: the gallery looks the same after.
 */
export const MUTATIONS = {
  enroll: { base: 'images', run: async ({ ann, fixture }) => ann.enroll('new', await input(fixture[1][1][2]), { keepImages: true, metadata: { n: 1 } }) },
  enrollVectors: { base: 'vectors', run: ({ ann, dim }) => ann.enrollVectors(entries(vectorLabels('w', 20), dim)) },
  remove: { base: 'vectors', run: ({ ann }) => ann.remove('v0003') },
  rename: { base: 'vectors', run: ({ ann }) => ann.rename('v0005', 'renamed') },
  setMetadata: { base: 'vectors', run: ({ ann }) => ann.setMetadata('v0007', { changed: true }) },
  // Fills the growing segment past its capacity (1,024): maintenance seals it into a graph.
  merge: { base: 'vectors', run: ({ ann, dim }) => ann.enrollVectors(entries(vectorLabels('m', 800), dim)) },
  optimize: { base: 'vectors', run: ({ ann }) => ann.optimize() },
  quantize: { base: 'vectors', run: ({ ann }) => ann.quantize() },
  // The same model again: every class comes back the same, from a gallery written anew.
  reembed: { base: 'images', run: ({ ann }) => ann.reembed(), same: true },
  adapt: { base: 'images', run: ({ ann }) => ann.adapt({ steps: 4, views: 1, seed: 1 }) },
  import: { base: 'vectors', replaces: 'images' },
};

/** The probe labels: base classes, the ones the mutations touch among them. */
export const PROBES = ['v0000', 'v0003', 'v0005', 'v0007', 'v0100', 'v0239', 'w0000', 'w0019', 'm0000', 'm0799'];

export { OPEN, fromBase64, toBase64 };
