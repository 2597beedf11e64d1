// Live recognition: grab the camera's centre square, search it in the worker,
// draw the top-K over the video. One search in flight at a time, so a slow
// device lowers the rate, never the video's smoothness.
import { $, h, sleep, describe } from './ui.js';
import { Camera } from './camera.js';

/** The user's threshold, per model (each model scores on its own scale). */
const THRESHOLD_KEY = 'metricann-demo.threshold.';
/** For a model that carries no calibrated threshold. */
const FALLBACK_THRESHOLD = 0.75;
const TOPK_KEY = 'metricann-demo.topk';

export class Live {
  active = false;
  paused = false;
  /** The last result (for tests and the "enroll it" button). */
  last = null;
  #app;
  #running = false;
  #fps = 0;
  #latency = 0;
  #lastAt = 0;
  #shownKey = '';
  #announced = '';
  #model = '';

  constructor(app) {
    this.#app = app;
    const threshold = $('threshold');
    this.#showThreshold();
    threshold.addEventListener('input', () => {
      this.#showThreshold();
      localStorage.setItem(THRESHOLD_KEY + this.#model, threshold.value);
      this.#shownKey = '';
    });
    const topk = $('topk');
    if (['1', '3', '5'].includes(localStorage.getItem(TOPK_KEY))) topk.value = localStorage.getItem(TOPK_KEY);
    topk.addEventListener('change', () => {
      localStorage.setItem(TOPK_KEY, topk.value);
      this.#shownKey = '';
    });
    $('pause').addEventListener('click', () => this.setPaused(!this.paused));
  }

  get threshold() {
    return Number($('threshold').value);
  }

  /** The slider starts at the user's last choice for this model, else at the model's calibrated threshold. */
  useModel(name, calibrated) {
    this.#model = name;
    const saved = localStorage.getItem(THRESHOLD_KEY + name);
    const value = saved !== null && Number(saved) >= 0 && Number(saved) <= 1 ? Number(saved) : calibrated ?? FALLBACK_THRESHOLD;
    $('threshold').value = String(Math.round(value * 100) / 100);
    this.#showThreshold();
    this.#shownKey = '';
  }

  #showThreshold() {
    $('threshold-value').textContent = Number($('threshold').value).toFixed(2);
  }

  setPaused(paused) {
    this.paused = paused;
    const button = $('pause');
    button.textContent = paused ? 'Resume recognition' : 'Pause recognition';
    if (paused) this.#state('paused', 'Paused');
  }

  /** Runs the loop while the camera view is shown. */
  setActive(active) {
    this.active = active;
    if (active && !this.#running) this.#loop();
  }

  async #loop() {
    this.#running = true;
    const video = $('camera-video');
    try {
      while (this.active) {
        const ann = this.#app.engine.ann;
        if (!ann || this.paused || document.hidden || this.#app.busy) {
          if (!ann) this.#state('idle', document.body.dataset.state === 'loading' ? 'Loading the model…' : '');
          await sleep(150);
          continue;
        }
        if (this.#app.classes.length === 0) {
          this.#empty();
          await sleep(250);
          continue;
        }
        const frame = await Camera.grab(video);
        if (!frame) {
          this.#state('idle', this.#app.camera.problem ? 'No camera' : 'Waiting for the camera…');
          await sleep(150);
          continue;
        }
        const t0 = performance.now();
        let result;
        try {
          result = await ann.search(frame, { k: Number($('topk').value), threshold: this.threshold });
        } catch (e) {
          frame.close?.();
          if (this.#app.engine.ann !== ann || this.#app.busy) {
            await sleep(100); // the gallery was closed or swapped meanwhile (import)
            continue;
          }
          this.#app.fail(e);
          this.#state('idle', describe(e));
          await sleep(1000);
          continue;
        }
        const t1 = performance.now();
        this.#measure(t0, t1);
        if (this.active && !this.paused) this.#render(result);
        // Let the page breathe between frames.
        await new Promise((ok) => requestAnimationFrame(ok));
      }
    } finally {
      this.#running = false;
    }
  }

  #measure(t0, t1) {
    const latency = t1 - t0;
    this.#latency = this.#latency ? this.#latency * 0.8 + latency * 0.2 : latency;
    if (this.#lastAt) {
      const fps = 1000 / (t1 - this.#lastAt);
      this.#fps = this.#fps ? this.#fps * 0.8 + fps * 0.2 : fps;
    }
    this.#lastAt = t1;
    const fps = `${this.#fps.toFixed(this.#fps < 10 ? 1 : 0)} fps`;
    $('fps').textContent = fps;
    $('fact-fps').textContent = `${fps} (recognitions a second)`;
    $('fact-latency').textContent = `${Math.round(this.#latency)} ms a frame`;
    document.body.dataset.fps = this.#fps.toFixed(2);
  }

  #state(state, note = '') {
    const box = $('results');
    box.dataset.state = state;
    delete box.dataset.top;
    delete box.dataset.score;
    $('results-note').replaceChildren(note);
    $('result-list').replaceChildren();
    this.#shownKey = '';
    this.#lastAt = 0;
  }

  #empty() {
    if ($('results').dataset.state === 'empty') return;
    this.#state('empty');
    $('results-note').replaceChildren('Nothing enrolled yet. ', h('a', { href: '#enroll' }, 'Enroll something'), ' to start recognising.');
    $('fps').textContent = '– fps';
  }

  #render(result) {
    this.last = result;
    const box = $('results');
    const top = result.matches[0];
    box.dataset.state = result.unknown ? 'unknown' : 'match';
    box.dataset.top = top?.label ?? '';
    box.dataset.score = top ? String(top.score) : '';
    const key = `${result.unknown}|${result.matches.map((m) => m.label).join('\u0000')}`;
    const list = $('result-list');
    if (key !== this.#shownKey) {
      this.#shownKey = key;
      const items = result.matches.map((m, i) => matchItem(m, i, i === 0 && !result.unknown));
      if (result.unknown) items.unshift(unknownItem(this.#app));
      list.replaceChildren(...items);
      $('results-note').replaceChildren(result.unknown && top ? `Closest, below ${this.threshold.toFixed(2)}:` : '');
    }
    for (const [i, m] of result.matches.entries()) {
      const li = list.querySelector(`li[data-rank="${i}"]`);
      if (!li) continue;
      li.dataset.score = String(m.score);
      li.querySelector('.score').textContent = m.score.toFixed(2);
      li.querySelector('.bar').style.setProperty('--score', Math.max(0, Math.min(1, m.score)));
    }
    const said = result.unknown ? 'Unknown' : `Recognised ${top.label}`;
    if (said !== this.#announced) {
      this.#announced = said;
      $('announce').textContent = said;
    }
  }
}

function matchItem(m, rank, best) {
  const thumb = m.metadata?.thumb;
  return h(
    'li',
    { class: `match${best ? ' best' : ''}`, dataset: { label: m.label, rank: String(rank) } },
    thumb ? h('img', { src: thumb, alt: '', width: 56, height: 56 }) : h('span', { class: 'thumb-fallback', 'aria-hidden': 'true' }, [...m.label][0] ?? '?'),
    h('span', { class: 'label' }, m.label),
    h('span', { class: 'score', title: 'Cosine similarity to the nearest enrolled picture' }, m.score.toFixed(2)),
    h('span', { class: 'bar', 'aria-hidden': 'true' }),
  );
}

function unknownItem(app) {
  return h(
    'li',
    { class: 'unknown-item' },
    h('span', { class: 'thumb-fallback', 'aria-hidden': 'true' }, '?'),
    h('span', { class: 'label' }, 'Unknown'),
    h('button', { type: 'button', class: 'small primary', onclick: () => app.enrollFromCamera() }, 'Enroll it'),
  );
}
