// The model and the gallery, in a Web Worker (the package's createWorker()), so
// that recognising a frame never blocks the page.
import { createWorker } from 'metricann';

/** The IndexedDB gallery the app keeps its classes in. */
export const GALLERY = 'metricann-demo';
const params = new URLSearchParams(location.search);

/** The model bundles that ship with the app: the first is the default. */
export const MODELS = {
  objects: { url: new URL('../models/objects.bundle', import.meta.url).href, label: 'Objects (photos, drawings)' },
  glyphs: { url: new URL('../models/glyphs.bundle', import.meta.url).href, label: 'Glyphs (Han characters)' },
};
const MODEL_KEY = 'metricann-demo.model-name';

/** The model picked last (?model=glyphs picks one for this visit). */
function chosenModel() {
  const wanted = params.get('model') ?? localStorage.getItem(MODEL_KEY);
  return Object.hasOwn(MODELS, wanted) ? wanted : Object.keys(MODELS)[0];
}
/**
 * "auto": on a cross-origin isolated page the package's threaded build (the CPU,
 * index builds on every core), elsewhere WebGPU when there is an adapter, else the
 * CPU; ?backend=cpu|webgpu forces one (webgpu: the single-threaded build).
 */
export const BACKEND = ['cpu', 'webgpu'].includes(params.get('backend')) ? params.get('backend') : 'auto';

export class Engine {
  /** The open gallery (the worker proxy of a MetricAnn instance), once ready. */
  ann = null;
  /** The name of the model in use (a key of MODELS). */
  model = chosenModel();
  #remote = null;

  get modelUrl() {
    return MODELS[this.model].url;
  }

  /**
   * Starts the worker, downloads the WebAssembly module and the model, opens the
   * gallery. `progress({ stage: 'engine' | 'model' | 'gallery', loaded, total })`.
   */
  async start(progress) {
    const worker = new Worker(new URL('./engine-worker.js', import.meta.url), { type: 'module', name: 'metricann' });
    this.#remote = createWorker({ worker });
    await new Promise((resolve, reject) => {
      const onMessage = (event) => {
        const msg = event.data;
        if (msg?.app === 'load-progress') progress({ stage: 'engine', loaded: msg.loaded, total: msg.total });
        else if (msg?.app === 'loaded') done(resolve);
        else if (msg?.app === 'load-failed') done(() => reject(Object.assign(new Error(`could not load the engine: ${msg.message}`), { code: 'IO' })));
      };
      const onError = (event) => {
        event.preventDefault?.();
        done(() => reject(new Error(`the recognition worker failed to start: ${event.message || 'a module did not load'}`)));
      };
      const done = (fn) => {
        worker.removeEventListener('message', onMessage);
        worker.removeEventListener('error', onError);
        fn();
      };
      worker.addEventListener('message', onMessage);
      worker.addEventListener('error', onError);
      worker.postMessage({ app: 'load', threads: BACKEND !== 'webgpu' });
    });
    await this.open(progress);
  }

  /** Opens the gallery; extra options go to MetricAnn.open (e.g. { skipDamaged: true }). */
  async open(progress = () => {}, extra = {}) {
    this.ann = await this.#remote.open({
      model: this.modelUrl,
      gallery: GALLERY,
      backend: BACKEND,
      // A gallery built by an earlier model is rebuilt from its kept images.
      reembed: true,
      onProgress: (p) => {
        progress({ stage: 'model', ...p });
        // Downloaded: what is left is reading (or rebuilding) the gallery. In the
        // next task, so that the full bar is drawn first.
        if (p.total !== null && p.loaded >= p.total) setTimeout(() => progress({ stage: 'gallery' }), 0);
      },
      ...extra,
    });
    return this.ann;
  }

  /** Replaces the gallery with an export file; on failure the old gallery is reopened. */
  async importGallery(file) {
    await this.ann?.close();
    this.ann = null;
    try {
      this.ann = await this.#remote.import(file, { model: this.modelUrl, gallery: GALLERY, backend: BACKEND, overwrite: true });
    } catch (e) {
      await this.open();
      throw e;
    }
    return this.ann;
  }

  /**
   * Changes the model: the gallery is reopened with it and its classes are
   * re-embedded from the kept enrollment images.
   */
  async switchModel(name, progress = () => {}) {
    if (!Object.hasOwn(MODELS, name)) throw Object.assign(new Error(`no model named ${name}`), { code: 'BAD_INPUT' });
    const previous = this.model;
    await this.ann?.close();
    this.ann = null;
    this.model = name;
    try {
      await this.open(progress);
    } catch (e) {
      this.model = previous;
      await this.open();
      throw e;
    }
    localStorage.setItem(MODEL_KEY, name);
    return this.ann;
  }

  /** Deletes the gallery and starts an empty one (when it cannot be opened). */
  async resetGallery() {
    await this.ann?.close();
    this.ann = null;
    await this.#remote.deleteGallery(GALLERY);
    return this.open();
  }
}
