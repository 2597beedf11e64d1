// In-page helpers the browser tests call through page.evaluate().
import { MetricAnn, createWorker, initialize, threadsSupported } from '/pkg/index.js';

export { MetricAnn, createWorker, initialize, threadsSupported };

const KINDS = ['bytes', 'blob', 'img', 'bitmap', 'imagedata', 'canvas', 'offscreen'];

/** The image at `url` as one of the input kinds MetricAnn accepts. */
export async function input(url, kind = 'bytes') {
  const bytes = new Uint8Array(await (await fetch(url)).arrayBuffer());
  if (kind === 'bytes') return bytes;
  const blob = new Blob([bytes], { type: 'image/png' });
  if (kind === 'blob') return new File([blob], url.split('/').pop(), { type: 'image/png' });
  if (kind === 'img') {
    const img = new Image();
    img.src = URL.createObjectURL(blob);
    await img.decode();
    return img;
  }
  const bitmap = await createImageBitmap(blob);
  if (kind === 'bitmap') return bitmap;
  if (kind === 'imagedata' || kind === 'canvas') {
    const c = document.createElement('canvas');
    c.width = bitmap.width;
    c.height = bitmap.height;
    const ctx = c.getContext('2d');
    ctx.drawImage(bitmap, 0, 0);
    return kind === 'canvas' ? c : ctx.getImageData(0, 0, c.width, c.height);
  }
  if (kind === 'offscreen') {
    const c = new OffscreenCanvas(bitmap.width, bitmap.height);
    c.getContext('2d').drawImage(bitmap, 0, 0);
    return c;
  }
  throw new Error(`unknown kind ${kind}`);
}

export function kindFor(i) {
  return KINDS[i % KINDS.length];
}

/** Error → plain object (what the test asserts on). */
export function plain(e) {
  return { name: e?.name, code: e?.code, message: e?.message, blob: e?.blob };
}

export async function attempt(fn) {
  try {
    return { ok: true, value: await fn() };
  } catch (e) {
    return { ok: false, error: plain(e) };
  }
}

/** Enrolls one image per class (varied input kinds); resolves to stats. */
export async function enrollAll(ann, classes) {
  let i = 0;
  for (const [label, urls] of classes) {
    await ann.enroll(label, await input(urls[0], kindFor(i++)), {
      keepImages: true,
      metadata: { index: i, first: urls[0] },
    });
  }
  return ann.stats();
}

/** Searches each class's enrollment image; resolves to [{label, top, score, unknown}]. */
export async function searchAll(ann, classes, k = 3) {
  const out = [];
  for (const [label, urls] of classes) {
    const r = await ann.search(await input(urls[0], 'bytes'), { k });
    out.push({ label, top: r.matches[0]?.label ?? null, score: r.matches[0]?.score ?? null, unknown: r.unknown, n: r.matches.length, metadata: r.matches[0]?.metadata ?? null });
  }
  return out;
}

/** Flips one byte in the middle of stored record `key` of gallery `name`, through IndexedDB. */
export async function damage(name, pick) {
  const db = await new Promise((ok, fail) => {
    const r = indexedDB.open(`metricann:${name}`);
    r.onsuccess = () => ok(r.result);
    r.onerror = () => fail(r.error);
  });
  const request = (r) =>
    new Promise((ok, fail) => {
      r.onsuccess = () => ok(r.result);
      r.onerror = () => fail(r.error);
    });
  const read = db.transaction('blobs', 'readonly').objectStore('blobs');
  const keys = await request(read.getAllKeys());
  const key = keys.filter((k) => k.startsWith(pick)).sort()[0];
  const value = await request(read.get(key));
  // Large records are stored as Blobs (src/store/idb.rs): put back the same kind.
  const isBlob = value instanceof Blob;
  const bytes = new Uint8Array(isBlob ? await value.arrayBuffer() : value);
  bytes[bytes.length >> 1] ^= 0x5a;
  const tx = db.transaction('blobs', 'readwrite');
  tx.objectStore('blobs').put(isBlob ? new Blob([bytes]) : bytes, key);
  await new Promise((ok, fail) => {
    tx.oncomplete = ok;
    tx.onerror = () => fail(tx.error);
  });
  db.close();
  return { key, keys, stored: isBlob ? 'Blob' : 'bytes' };
}

/** How each record of gallery `name` is stored in IndexedDB: 'Blob' or 'bytes'. */
export async function storedKinds(name) {
  const db = await new Promise((ok, fail) => {
    const r = indexedDB.open(`metricann:${name}`);
    r.onsuccess = () => ok(r.result);
    r.onerror = () => fail(r.error);
  });
  const store = db.transaction('blobs', 'readonly').objectStore('blobs');
  const [keys, values] = await Promise.all(
    [store.getAllKeys(), store.getAll()].map(
      (r) =>
        new Promise((ok, fail) => {
          r.onsuccess = () => ok(r.result);
          r.onerror = () => fail(r.error);
        }),
    ),
  );
  db.close();
  return Object.fromEntries(keys.map((k, i) => [k, values[i] instanceof Blob ? 'Blob' : 'bytes']));
}

export async function gpuInfo() {
  if (!navigator.gpu) return { available: false, reason: 'navigator.gpu is missing' };
  try {
    const adapter = await navigator.gpu.requestAdapter();
    if (!adapter) return { available: false, reason: 'requestAdapter() returned null' };
    const info = adapter.info ?? {};
    return { available: true, vendor: info.vendor, architecture: info.architecture, description: info.description };
  } catch (e) {
    return { available: false, reason: String(e) };
  }
}
