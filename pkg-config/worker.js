// metricann's Web Worker: runs MetricAnn instances for createWorker() (index.js).
import { MetricAnn } from './index.js';

const instances = new Map();
let nextHandle = 1;
/** Running adapt() calls by message id, to abort them. */
const aborts = new Map();

async function dispatch(id, target, method, args) {
  if (target === null || target === undefined) {
    if (method === 'deleteGallery') return MetricAnn.deleteGallery(args[0]);
    if (method !== 'open' && method !== 'import') throw new Error(`unknown method ${method}`);
    const opts = { ...args[args.length - 1] };
    if (opts.wantProgress) opts.onProgress = (progress) => self.postMessage({ id, progress });
    delete opts.wantProgress;
    const ann = method === 'open' ? await MetricAnn.open(opts) : await MetricAnn.import(args[0], opts);
    const handle = nextHandle++;
    instances.set(handle, ann);
    return { handle };
  }
  const ann = instances.get(target);
  if (!ann) {
    const err = new Error('this MetricAnn instance is closed');
    err.code = 'BAD_INPUT';
    throw err;
  }
  if (method === 'close') instances.delete(target);
  if (typeof ann[method] !== 'function') throw new Error(`unknown method ${method}`);
  if (method === 'adapt') {
    const { wantProgress, ...opts } = args[0] ?? {};
    const controller = new AbortController();
    aborts.set(id, controller);
    if (wantProgress) opts.onProgress = (progress) => self.postMessage({ id, progress });
    try {
      return await ann.adapt({ ...opts, signal: controller.signal });
    } finally {
      aborts.delete(id);
    }
  }
  return ann[method](...args);
}

self.addEventListener('message', async (event) => {
  if (typeof event.data?.abort === 'number') {
    aborts.get(event.data.abort)?.abort();
    return;
  }
  const { id, target, method, args } = event.data ?? {};
  if (typeof id !== 'number') return;
  try {
    const value = await dispatch(id, target, method, args ?? []);
    self.postMessage({ id, ok: true, value });
  } catch (e) {
    self.postMessage({
      id,
      ok: false,
      error: { name: e?.name, code: e?.code ?? 'INTERNAL', message: e?.message ?? String(e), blob: e?.blob },
    });
  }
});
