// metricann: the typed ESM entry. A thin Promise wrapper over the wasm class,
// turning a Rust panic (a WebAssembly RuntimeError) into an INTERNAL error.
//
// Two builds of the module ship: ./metricann.js (one thread) and
// ./threads/metricann.js (graph builds on a pool of Web Workers sharing the
// module's memory). The threaded one needs SharedArrayBuffer, which browsers give
// only to cross-origin isolated pages (COOP + COEP headers); initialize() picks it
// there and the single-threaded one everywhere else (Node, edge runtimes, pages
// without the headers).
import * as single from './metricann.js';

/** Every `code` a MetricAnn error can carry. */
export const ERROR_CODES = Object.freeze([
  'BAD_IMAGE',
  'BAD_INPUT',
  'CORRUPT',
  'MODEL_MISMATCH',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'QUOTA_EXCEEDED',
  'LOCKED',
  'IO',
  'INTERNAL',
]);

/**
 * The models the package ships, by name: `MetricAnn.open({ model: 'objects' })`.
 * `objects` (photos, products, drawings, emoji) is the general one; `glyphs`
 * knows Han characters.
 */
export const MODELS = Object.freeze({
  objects: 'models/objects.bundle',
  glyphs: 'models/glyphs.bundle',
});

/** A shipped model's name → its URL beside this file; anything else as given. */
function resolveModel(model) {
  if (typeof model === 'string' && Object.hasOwn(MODELS, model)) return new URL(`./${MODELS[model]}`, import.meta.url);
  return model;
}

let wasmSource = undefined;
let modelLoader = null;
let ready = null;
let crashed = null;
/** The instantiated build's exports, once initialize() has resolved. */
let wasm = null;

/** @internal Node's entry points these at the file system. */
export function __configure({ wasm, loadModel } = {}) {
  if (wasm !== undefined) wasmSource = wasm;
  if (loadModel !== undefined) modelLoader = loadModel;
}

/**
 * Whether this context can run the threaded build: cross-origin isolated (so
 * SharedArrayBuffer exists) and able to start Web Workers.
 */
export function threadsSupported() {
  return (
    globalThis.crossOriginIsolated === true &&
    typeof SharedArrayBuffer === 'function' &&
    typeof Worker === 'function'
  );
}

/** `options.threads` ('auto', the default, or a count) → the pool size; 1: no pool. */
function threadCount(threads = 'auto') {
  if (threads === 'auto') return threadsSupported() ? Math.min(globalThis.navigator?.hardwareConcurrency ?? 1, 16) : 1;
  if (!Number.isInteger(threads) || threads < 1) {
    throw metricannError('BAD_INPUT', `threads must be 'auto' or a positive integer, not ${threads}`);
  }
  return threadsSupported() ? threads : 1;
}

async function instantiate(source, threads) {
  const moduleOrPath = source === undefined ? undefined : { module_or_path: source };
  if (threads > 1) {
    try {
      const threaded = await import('./threads/metricann.js');
      await threaded.default(moduleOrPath);
      // A worker that cannot load its module never reports ready: give up after a while.
      let timer;
      const late = new Promise((_, fail) => {
        timer = setTimeout(() => fail(new Error(`the ${threads} Web Workers did not start within 30 s`)), 30_000);
      });
      await Promise.race([threaded.initThreadPool(threads), late]).finally(() => clearTimeout(timer));
      return threaded;
    } catch (e) {
      // A bundler that dropped threads/, or a browser that refuses shared memory:
      // the single-threaded build does everything, only builds are slower.
      console.warn(`metricann: the threaded build failed to start (${e?.message ?? e}); using one thread`);
      if (source !== undefined) throw e;
    }
  }
  await single.default(moduleOrPath);
  return single;
}

/**
 * Loads and instantiates the WebAssembly module (once). Called by `open` and
 * `import`; call it early to overlap the download with other work. `wasm`, when
 * given, is the single-threaded build (`metricann_bg.wasm`) unless `threads` is
 * given too: then it must be the build `threads` selects (`threads/metricann_bg.wasm`
 * when `threadsSupported()` and `threads` is not 1).
 */
export function initialize(wasmInput, { threads } = {}) {
  if (!ready) {
    ready = (async () => {
      let source = wasmInput ?? wasmSource;
      if (typeof source === 'function') source = await source();
      const wanted = threads ?? (wasmInput === undefined ? 'auto' : 1);
      wasm = await instantiate(source, threadCount(wanted));
    })();
    ready.catch(() => {
      ready = null;
    });
  }
  return ready;
}

function metricannError(code, message) {
  const err = new Error(message);
  err.name = 'MetricAnnError';
  err.code = code;
  return err;
}

/** What an aborted `adapt` rejects with: the signal's reason, else an AbortError. */
function abortError(signal) {
  if (signal?.reason !== undefined) return signal.reason;
  return new DOMException('the adaptation was aborted', 'AbortError');
}

function convert(e) {
  if (typeof WebAssembly !== 'undefined' && e instanceof WebAssembly.RuntimeError) {
    let panic = null;
    try {
      panic = wasm?.takePanicMessage();
    } catch {
      // the module is unusable
    }
    crashed = metricannError(
      'INTERNAL',
      `metricann crashed: ${panic ?? e.message}; reload the page (or restart the worker) to use it again`,
    );
    return crashed;
  }
  if (e instanceof Error) return e;
  return metricannError('INTERNAL', String(e));
}

async function call(fn) {
  if (crashed) throw crashed;
  try {
    return await fn();
  } catch (e) {
    throw convert(e);
  }
}

async function prepare(options) {
  if (options === null || typeof options !== 'object') {
    throw metricannError('BAD_INPUT', 'options must be an object: { model, gallery?, backend? }');
  }
  await initialize();
  const opts = { ...options, model: resolveModel(options.model) };
  if (typeof opts.model === 'string' && modelLoader) {
    const bytes = await modelLoader(opts.model, opts.onProgress);
    if (bytes) opts.model = bytes;
  } else if (opts.model instanceof URL) {
    opts.model = opts.model.href;
    if (modelLoader) {
      const bytes = await modelLoader(opts.model, opts.onProgress);
      if (bytes) opts.model = bytes;
    }
  }
  return opts;
}

/** One model and one gallery (IndexedDB when named, else in memory). */
export class MetricAnn {
  #core;

  /** @internal use MetricAnn.open / MetricAnn.import */
  constructor(core) {
    if (!wasm || !(core instanceof wasm.MetricAnn)) {
      throw metricannError('BAD_INPUT', 'use MetricAnn.open(options) or MetricAnn.import(data, options)');
    }
    this.#core = core;
  }

  static async open(options) {
    const opts = await prepare(options);
    return new MetricAnn(await call(() => wasm.MetricAnn.open(opts)));
  }

  static async import(data, options) {
    const opts = await prepare(options);
    return new MetricAnn(await call(() => wasm.MetricAnn.importGallery(data, opts)));
  }

  static async deleteGallery(name) {
    await initialize();
    return call(() => wasm.MetricAnn.deleteGallery(name));
  }

  static get version() {
    return (wasm ?? single).version();
  }

  /** The threads graph builds run on: the Web Worker pool's size, 1 without one (or before `initialize`). */
  static get threads() {
    return wasm ? wasm.threads() : 1;
  }

  #live() {
    if (!this.#core) throw metricannError('BAD_INPUT', 'this MetricAnn instance is closed');
    return this.#core;
  }

  embed(image) {
    return call(() => this.#live().embed(image));
  }

  enroll(label, images, options = {}) {
    return call(() => this.#live().enroll(label, images, options));
  }

  enrollVectors(entries) {
    return call(() => this.#live().enrollVectors(entries));
  }

  search(image, options = {}) {
    return call(() => this.#live().search(image, options));
  }

  searchVector(vector, options = {}) {
    return call(() => this.#live().searchVector(vector, options));
  }

  remove(label) {
    return call(() => this.#live().remove(label));
  }

  rename(oldLabel, newLabel) {
    return call(() => this.#live().rename(oldLabel, newLabel));
  }

  setMetadata(label, metadata) {
    return call(() => this.#live().setMetadata(label, metadata ?? null));
  }

  classes() {
    return call(() => this.#live().classes());
  }

  stats() {
    return call(() => this.#live().stats());
  }

  export(options = {}) {
    return call(() => this.#live().exportGallery(options));
  }

  reembed() {
    return call(() => this.#live().reembed());
  }

  async adapt(options = {}) {
    if (options?.signal?.aborted) throw abortError(options.signal);
    const result = await call(() => this.#live().adapt(options));
    if (result === null) throw abortError(options.signal);
    return result;
  }

  resetAdaptation() {
    return call(() => this.#live().resetAdaptation());
  }

  maintain() {
    return call(() => this.#live().maintain());
  }

  quantize(mode) {
    return call(() => this.#live().quantize(mode));
  }

  optimize() {
    return call(() => this.#live().optimize());
  }

  async close() {
    const core = this.#core;
    if (!core) return;
    this.#core = null;
    await call(() => core.close());
    core.free();
  }
}

// ---- Web Worker proxy ----

function isDomImage(x) {
  return (
    (typeof HTMLImageElement !== 'undefined' && x instanceof HTMLImageElement) ||
    (typeof HTMLVideoElement !== 'undefined' && x instanceof HTMLVideoElement) ||
    (typeof HTMLCanvasElement !== 'undefined' && x instanceof HTMLCanvasElement) ||
    (typeof OffscreenCanvas !== 'undefined' && x instanceof OffscreenCanvas)
  );
}

async function transferable(image) {
  if (Array.isArray(image)) return Promise.all(image.map(transferable));
  if (isDomImage(image)) {
    if (typeof HTMLImageElement !== 'undefined' && image instanceof HTMLImageElement && !image.complete) {
      await image.decode();
    }
    return createImageBitmap(image);
  }
  return image;
}

class RemoteMetricAnn {
  #send;
  #handle;
  constructor(send, handle) {
    this.#send = send;
    this.#handle = handle;
  }
  #call(method, ...args) {
    return this.#send({ target: this.#handle, method, args });
  }
  adapt(options = {}) {
    const { onProgress, signal, ...rest } = options ?? {};
    const msg = { target: this.#handle, method: 'adapt', args: [{ ...rest, wantProgress: typeof onProgress === 'function' }] };
    return this.#send(msg, onProgress, signal);
  }
  resetAdaptation() {
    return this.#call('resetAdaptation');
  }
  async embed(image) {
    return this.#call('embed', await transferable(image));
  }
  async enroll(label, images, options = {}) {
    return this.#call('enroll', label, await transferable(images), options);
  }
  enrollVectors(entries) {
    return this.#call('enrollVectors', entries);
  }
  async search(image, options = {}) {
    return this.#call('search', await transferable(image), options);
  }
  searchVector(vector, options = {}) {
    return this.#call('searchVector', vector, options);
  }
  remove(label) {
    return this.#call('remove', label);
  }
  rename(oldLabel, newLabel) {
    return this.#call('rename', oldLabel, newLabel);
  }
  setMetadata(label, metadata) {
    return this.#call('setMetadata', label, metadata ?? null);
  }
  classes() {
    return this.#call('classes');
  }
  stats() {
    return this.#call('stats');
  }
  export(options = {}) {
    return this.#call('export', options);
  }
  reembed() {
    return this.#call('reembed');
  }
  maintain() {
    return this.#call('maintain');
  }
  quantize(mode) {
    return this.#call('quantize', mode);
  }
  optimize() {
    return this.#call('optimize');
  }
  close() {
    return this.#call('close');
  }
}

/**
 * Runs MetricAnn in a module Web Worker: the same Promise API, with the model,
 * the gallery and index maintenance off the main thread. DOM images are turned
 * into ImageBitmaps before they are sent.
 */
export function createWorker(options = {}) {
  const worker =
    options.worker ?? new Worker(new URL('./worker.js', import.meta.url), { type: 'module', name: 'metricann' });
  let next = 1;
  const pending = new Map();
  worker.addEventListener('message', (event) => {
    const msg = event.data;
    const p = pending.get(msg.id);
    if (!p) return;
    if ('progress' in msg) {
      p.onProgress?.(msg.progress);
      return;
    }
    pending.delete(msg.id);
    if (msg.ok) p.resolve(msg.value);
    else if (msg.error.name === 'AbortError') p.reject(abortError(p.signal));
    else {
      const err = metricannError(msg.error.code ?? 'INTERNAL', msg.error.message);
      if (msg.error.blob) err.blob = msg.error.blob;
      p.reject(err);
    }
  });
  worker.addEventListener('error', (event) => {
    const err = metricannError('INTERNAL', `the metricann worker failed: ${event.message ?? 'unknown error'}`);
    for (const p of pending.values()) p.reject(err);
    pending.clear();
  });
  const send = (msg, onProgress, signal) =>
    new Promise((resolve, reject) => {
      if (signal?.aborted) {
        reject(abortError(signal));
        return;
      }
      const id = next++;
      pending.set(id, { resolve, reject, onProgress, signal });
      signal?.addEventListener('abort', () => worker.postMessage({ abort: id }), { once: true });
      const transfer = [];
      const collect = (x) => {
        if (typeof ImageBitmap !== 'undefined' && x instanceof ImageBitmap) transfer.push(x);
        else if (Array.isArray(x)) x.forEach(collect);
      };
      (msg.args ?? []).forEach(collect);
      worker.postMessage({ id, ...msg }, transfer);
    });
  const strip = (opts) => {
    const { onProgress, ...rest } = opts ?? {};
    return { rest: { ...rest, wantProgress: typeof onProgress === 'function' }, onProgress };
  };
  return {
    worker,
    async open(opts) {
      const { rest, onProgress } = strip(opts);
      const { handle } = await send({ target: null, method: 'open', args: [rest] }, onProgress);
      return new RemoteMetricAnn(send, handle);
    },
    async import(data, opts) {
      const { rest, onProgress } = strip(opts);
      const { handle } = await send({ target: null, method: 'import', args: [data, rest] }, onProgress);
      return new RemoteMetricAnn(send, handle);
    },
    deleteGallery(name) {
      return send({ target: null, method: 'deleteGallery', args: [name] });
    },
    terminate() {
      worker.terminate();
      const err = metricannError('BAD_INPUT', 'the metricann worker was terminated');
      for (const p of pending.values()) p.reject(err);
      pending.clear();
    },
  };
}

export default MetricAnn;
