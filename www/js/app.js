// MetricANN demo: wires the camera, the recognition worker and the three views.
import { $, h, banner, describe, formatBytes, confirmDialog, toast } from './ui.js';
import { Engine, MODELS } from './engine.js';
import { Camera } from './camera.js';
import { Live } from './live.js';
import { Enroll } from './enroll.js';
import { Gallery } from './gallery.js';

const VIEWS = ['camera', 'enroll', 'gallery'];

class App {
  engine = new Engine();
  camera = new Camera([$('camera-video'), $('enroll-video')]);
  /** [{ label, examples, metadata, hasImages }] */
  classes = [];
  stats = null;
  ready = false;
  /** True while the gallery is being swapped (import): the live loop waits. */
  busy = false;
  writable = true;

  constructor() {
    this.live = new Live(this);
    this.enroll = new Enroll(this);
    this.gallery = new Gallery(this);
  }

  async start() {
    window.addEventListener('hashchange', () => this.route());
    this.route();
    this.#cameraUi();
    this.#modelUi();
    this.#offlineUi();
    this.camera.start();
    await this.#startEngine();
  }

  route() {
    const view = VIEWS.includes(location.hash.slice(1)) ? location.hash.slice(1) : 'camera';
    for (const section of document.querySelectorAll('main > .view')) section.hidden = section.dataset.view !== view;
    for (const a of document.querySelectorAll('.tabs a')) {
      if (a.dataset.view === view) a.setAttribute('aria-current', 'page');
      else a.removeAttribute('aria-current');
    }
    document.body.dataset.view = view;
    document.title = `${view[0].toUpperCase()}${view.slice(1)} · MetricANN`;
    this.live.setActive(view === 'camera');
    if (view === 'gallery') this.gallery.storage();
  }

  async #startEngine() {
    const progress = $('load-progress');
    const show = ({ stage, loaded, total }) => {
      const names = { engine: 'Downloading the recognition engine', model: 'Downloading the model', gallery: 'Opening your gallery' };
      $('load-label').textContent = `${names[stage]}…`;
      if (stage !== 'gallery' && total) {
        progress.value = Math.min(1, loaded / total);
        $('load-detail').textContent = `${formatBytes(loaded)} of ${formatBytes(total)}`;
      } else if (loaded) {
        progress.removeAttribute('value');
        $('load-detail').textContent = formatBytes(loaded);
      } else {
        progress.removeAttribute('value');
        $('load-detail').textContent = '';
      }
    };
    try {
      await this.engine.start(show);
    } catch (e) {
      return this.#openFailed(e);
    }
    await this.#opened();
  }

  async #opened() {
    await this.refresh();
    this.ready = true;
    document.body.dataset.state = 'ready';
    $('loader').hidden = true;
    const s = this.stats;
    const name = s.backend === 'webgpu' ? 'WebGPU' : 'CPU';
    const chip = $('backend-chip');
    chip.textContent = name;
    chip.dataset.backend = s.backend;
    chip.title = s.backendFallback ? `Runs on the CPU (WebAssembly): ${s.backendFallback}` : `Runs on ${name === 'CPU' ? 'the CPU (WebAssembly)' : 'the GPU (WebGPU)'}`;
    const threads = s.threads > 1 ? ` · index builds on ${s.threads} threads` : '';
    $('fact-backend').textContent = `${s.backend === 'webgpu' ? 'WebGPU (GPU)' : 'CPU (WebAssembly)'}${threads}`;
    $('fact-model').textContent = `${this.engine.model} · ${s.dim}-d · ${s.modelFingerprint.slice(0, 8)}`;
    $('model-select').value = this.engine.model;
    this.live.useModel(this.engine.model, s.threshold);
    const previous = localStorage.getItem('metricann-demo.model');
    if (previous && previous !== s.modelFingerprint && this.classes.length) {
      toast(`A new model: your ${this.classes.length === 1 ? 'class was' : `${this.classes.length} classes were`} rebuilt from the kept pictures.`, 'success', 6000);
    }
    localStorage.setItem('metricann-demo.model', s.modelFingerprint);
    if (s.damaged?.length) {
      banner(`${s.damaged.length} damaged record(s) were left out of the gallery: ${s.damaged.map((d) => d.blob).join(', ')}.`);
    } else if (!this.writable) {
      banner('Read-only: the gallery is open in another tab or window. Close it there, then reopen here.', [
        { label: 'Reopen', run: () => location.reload() },
      ]);
    } else {
      banner(null);
    }
  }

  async #openFailed(e) {
    document.body.dataset.state = 'error';
    $('loader').hidden = true;
    console.error(e);
    $('backend-chip').textContent = 'Not running';
    const actions = [{ label: 'Reload', run: () => location.reload() }];
    // A damaged stored record (err.blob names it), or a gallery of another model
    // that cannot be rebuilt (no kept images): the gallery's problem, not the model's.
    const url = this.engine.modelUrl;
    const modelProblem = String(e.message).includes(url) || e.blob === url;
    const galleryProblem = !modelProblem && ((e.code === 'CORRUPT' && e.blob) || e.code === 'MODEL_MISMATCH' || /re-embed/.test(e.message));
    if (!galleryProblem) {
      banner(`The recognition engine could not start: ${describe(e)}`, actions);
      return;
    }
    if (e.code === 'CORRUPT') {
      actions.unshift({
        label: 'Open what is readable',
        primary: true,
        run: () => this.#retry(() => this.engine.open(undefined, { skipDamaged: true })),
      });
    }
    actions.push({
      label: 'Start an empty gallery',
      run: async () => {
        const ok = await confirmDialog({ title: 'Start an empty gallery?', text: 'Every class stored on this device is deleted.', ok: 'Delete all' });
        if (ok) this.#retry(() => this.engine.resetGallery());
      },
    });
    banner(`The gallery could not be opened: ${describe(e)}`, actions);
  }

  async #retry(open) {
    banner(null);
    try {
      await open();
      await this.#opened();
    } catch (e) {
      this.#openFailed(e);
    }
  }

  /** Reloads the class list and stats from the worker, then redraws what shows them. */
  async refresh() {
    const ann = this.engine.ann;
    if (!ann) return;
    [this.classes, this.stats] = await Promise.all([ann.classes(), ann.stats()]);
    this.classes.sort((a, b) => a.label.localeCompare(b.label));
    this.writable = this.stats.writable !== false;
    $('class-count').textContent = String(this.classes.length);
    $('known-labels').replaceChildren(...this.classes.map((c) => h('option', { value: c.label })));
    document.body.dataset.classes = String(this.classes.length);
    this.gallery.render();
    this.enroll.update();
  }

  /** An error while running (not at start). */
  fail(e) {
    console.error(e);
    if (e.code === 'INTERNAL') banner(`The recognition engine stopped: ${e.message}`, [{ label: 'Reload', primary: true, run: () => location.reload() }]);
    else toast(describe(e), 'error', 6000);
  }

  /** "Enroll it" under an unknown result: the current frame becomes the first picture. */
  async enrollFromCamera() {
    await this.enroll.snap($('camera-video'));
    location.hash = '#enroll';
    $('class-name').focus();
  }

  /** After the first enrollment, ask the browser to keep the gallery under storage pressure. */
  persistOnce() {
    if (localStorage.getItem('metricann-demo.persist-asked')) return;
    localStorage.setItem('metricann-demo.persist-asked', '1');
    navigator.storage?.persist?.().catch(() => {});
  }

  #cameraUi() {
    const select = $('camera-select');
    const showProblem = () => {
      const problem = this.camera.problem;
      $('camera-message').hidden = !problem;
      $('camera-message-text').textContent = problem ?? '';
      $('enroll-camera-message').hidden = !problem;
      $('snap').disabled = Boolean(problem) || this.enroll.shots.length >= 3;
      document.body.dataset.camera = problem ? 'off' : this.camera.stream ? 'on' : 'starting';
    };
    this.camera.addEventListener('change', showProblem);
    this.camera.addEventListener('devices', (e) => {
      const devices = e.detail;
      const current = this.camera.deviceId;
      select.replaceChildren(
        ...(devices.length ? [] : [h('option', { value: '' }, 'Default camera')]),
        ...devices.map((d, i) => h('option', { value: d.deviceId, selected: d.deviceId === current }, d.label || `Camera ${i + 1}`)),
      );
    });
    select.addEventListener('change', () => this.camera.use(select.value));
    $('camera-retry').addEventListener('click', () => this.camera.start());
    document.addEventListener('visibilitychange', () => {
      // Give the camera back while the app is hidden; take it again on return.
      if (document.hidden) this.camera.stop();
      else if (!this.camera.stream) this.camera.start();
    });
    showProblem();
  }

  #modelUi() {
    const select = $('model-select');
    select.replaceChildren(...Object.entries(MODELS).map(([name, m]) => h('option', { value: name }, m.label)));
    select.value = this.engine.model;
    select.addEventListener('change', async () => {
      if (select.value === this.engine.model) return;
      this.busy = true;
      select.disabled = true;
      try {
        await this.engine.switchModel(select.value);
        await this.#opened();
        toast(`Now recognising with the ${MODELS[this.engine.model].label.toLowerCase()} model.`, 'success');
      } catch (e) {
        select.value = this.engine.model;
        this.fail(e);
      } finally {
        this.busy = false;
        select.disabled = false;
      }
    });
  }

  #offlineUi() {
    const chip = $('offline-chip');
    let cached = false;
    const show = () => {
      const online = navigator.onLine;
      chip.textContent = !online ? (cached ? 'Offline · cached' : 'Offline') : cached ? 'Works offline' : 'Online only';
      chip.dataset.state = !online ? 'offline' : cached ? 'cached' : 'online';
      chip.title = cached ? 'The app, its engine and the model are cached on this device' : 'Not cached for offline use (yet)';
    };
    window.addEventListener('online', show);
    window.addEventListener('offline', show);
    show();
    if (!('serviceWorker' in navigator)) return;
    navigator.serviceWorker
      .register(new URL('../sw.js', import.meta.url), { scope: new URL('../', import.meta.url).pathname })
      .catch((e) => console.warn('service worker not registered:', e.message));
    // ready: a service worker is active, so it has finished caching everything.
    navigator.serviceWorker.ready.then(() => {
      cached = true;
      document.body.dataset.offline = 'ready';
      show();
    });
  }
}

const app = new App();
window.metricannDemo = app; // for the console (and the end-to-end tests)
app.start();
