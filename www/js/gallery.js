// Gallery: the enrolled classes (thumbnail, name, picture count), rename,
// delete, export and import of the whole gallery, storage use, and "Improve
// recognition" (the model adapted to the classes on the device).
import { $, h, toast, describe, confirmDialog, formatBytes, plural } from './ui.js';

/** Share of the progress bar the features take (the training is quick). */
const FEATURES_SHARE = 0.95;

export class Gallery {
  #app;
  /** The AbortController of a running adaptation. */
  #adapting = null;

  constructor(app) {
    this.#app = app;
    $('export').addEventListener('click', () => this.export());
    $('import').addEventListener('click', () => $('import-input').click());
    $('import-input').addEventListener('change', (e) => {
      const [file] = e.target.files;
      e.target.value = '';
      if (file) this.import(file);
    });
    $('rename-cancel').addEventListener('click', () => $('rename-dialog').close('cancel'));
    $('adapt-run').addEventListener('click', () => this.adapt());
    $('adapt-cancel').addEventListener('click', () => this.#adapting?.abort());
    $('adapt-reset').addEventListener('click', () => this.resetAdaptation());
    $('persist').addEventListener('click', async () => {
      const granted = await navigator.storage?.persist?.();
      toast(granted ? 'The browser will keep your gallery.' : 'The browser did not agree to keep it (it may later, as you use the app).');
      this.storage();
    });
  }

  render() {
    const { classes, stats, writable } = this.#app;
    const list = $('class-list');
    list.replaceChildren(
      ...classes.map((c) =>
        h(
          'li',
          { class: 'card', dataset: { label: c.label } },
          c.metadata?.thumb
            ? h('img', { src: c.metadata.thumb, alt: '', width: 96, height: 96 })
            : h('span', { class: 'thumb-fallback', 'aria-hidden': 'true' }, [...c.label][0] ?? '?'),
          h(
            'div',
            { class: 'card-text' },
            h('h2', { class: 'card-title' }, c.label),
            h('p', { class: 'muted' }, plural(c.examples, 'picture'), c.metadata?.updated ? ` · ${when(c.metadata.updated)}` : ''),
          ),
          h(
            'div',
            { class: 'card-actions' },
            h('button', { type: 'button', class: 'small', 'aria-label': `Rename ${c.label}`, disabled: !writable, onclick: () => this.rename(c.label) }, 'Rename'),
            h('button', { type: 'button', class: 'small danger', 'aria-label': `Delete ${c.label}`, disabled: !writable, onclick: () => this.delete(c) }, 'Delete'),
          ),
        ),
      ),
    );
    $('gallery-empty').hidden = classes.length > 0 || !this.#app.engine.ann;
    const vectors = stats?.vectors ?? 0;
    $('gallery-summary').textContent = stats
      ? `${plural(classes.length, 'class', 'classes')}, ${plural(vectors, 'picture')}` + (writable ? '' : ' · read-only here: open in another tab')
      : 'Loading…';
    $('export').disabled = !this.#app.engine.ann || classes.length === 0;
    $('import').disabled = !this.#app.engine.ann || !writable;
    this.renderAdapt();
    this.storage();
  }

  renderAdapt() {
    const { classes, stats, writable } = this.#app;
    const running = this.#adapting !== null;
    const usable = classes.length >= 2 && classes.every((c) => c.hasImages);
    $('adapt-run').disabled = running || !writable || !usable || !this.#app.engine.ann;
    $('adapt-cancel').hidden = !running;
    $('adapt-reset').hidden = running || !stats?.adapted;
    $('adapt-reset').disabled = !writable;
    $('adapt-progress').hidden = !running;
    if (running) return;
    $('adapt-status').textContent = stats?.adapted
      ? 'The model is adapted to your classes (on this device). Improve again after enrolling more.'
      : classes.length < 2
        ? 'Teaches the model your classes from their pictures, on this device. Needs two classes or more.'
        : 'Teaches the model your classes from their pictures, on this device (a minute or less).';
  }

  async adapt() {
    const controller = new AbortController();
    this.#adapting = controller;
    this.#app.busy = true;
    const bar = $('adapt-progress');
    const status = $('adapt-status');
    bar.value = 0;
    status.textContent = 'Looking at your pictures…';
    this.renderAdapt();
    $('adapt-cancel').focus();
    try {
      const result = await this.#app.engine.ann.adapt({
        signal: controller.signal,
        onProgress: (p) => {
          if (p.phase === 'features') {
            bar.value = (FEATURES_SHARE * p.done) / p.total;
            status.textContent = `Looking at your pictures… ${Math.round((100 * p.done) / p.total)} %`;
          } else {
            bar.value = FEATURES_SHARE + ((1 - FEATURES_SHARE) * p.step) / p.steps;
            status.textContent = `Training… step ${p.step} of ${p.steps}`;
          }
        },
      });
      this.#adapting = null;
      await this.#app.refresh();
      status.textContent = outcome(result);
      toast(result.adapted ? 'Recognition improved for your classes.' : 'The model was left as it was.', result.adapted ? 'success' : 'info');
    } catch (err) {
      this.#adapting = null;
      this.renderAdapt();
      if (err.name === 'AbortError') status.textContent = 'Cancelled: nothing changed.';
      else toast(`Could not improve recognition: ${describe(err)}`, 'error', 8000);
    } finally {
      this.#adapting = null;
      this.#app.busy = false;
      $('adapt-run').focus();
    }
  }

  async resetAdaptation() {
    const ok = await confirmDialog({
      title: 'Undo the improvement?',
      text: 'The model goes back to how it shipped, and your classes are recognised with it again.',
      ok: 'Undo',
    });
    if (!ok) return;
    this.#app.busy = true;
    try {
      await this.#app.engine.ann.resetAdaptation();
      await this.#app.refresh();
      toast('The model is back to how it shipped.', 'success');
    } catch (err) {
      toast(`Could not undo: ${describe(err)}`, 'error', 6000);
    } finally {
      this.#app.busy = false;
    }
  }

  async storage() {
    const est = await navigator.storage?.estimate?.().catch(() => null);
    const gallery = this.#app.stats?.bytes;
    const label = $('storage-label');
    const detail = $('storage-detail');
    const meter = $('storage-meter');
    if (!est) {
      label.textContent = 'Storage';
      detail.textContent = gallery !== undefined ? `gallery ${formatBytes(gallery)}` : '';
      meter.hidden = true;
      return;
    }
    label.textContent = `Storage: ${formatBytes(est.usage)} of ${formatBytes(est.quota)} used`;
    detail.textContent = gallery !== undefined ? `(the gallery: ${formatBytes(gallery)}; the app and model cache the rest)` : '';
    meter.hidden = false;
    meter.max = est.quota || 1;
    meter.value = est.usage || 0;
    meter.high = (est.quota || 1) * 0.8;
    const persisted = await navigator.storage?.persisted?.().catch(() => false);
    $('persist').hidden = persisted || !navigator.storage?.persist;
  }

  async rename(label) {
    const dialog = $('rename-dialog');
    const input = $('rename-input');
    const error = $('rename-error');
    $('rename-title').textContent = `Rename “${label}”`;
    input.value = label;
    error.textContent = '';
    dialog.returnValue = 'cancel';
    dialog.showModal();
    input.select();
    const onSubmit = async (e) => {
      e.preventDefault();
      const name = input.value.trim();
      if (!name) {
        error.textContent = 'The name cannot be empty.';
        return;
      }
      if (name === label) {
        dialog.close('cancel');
        return;
      }
      try {
        await this.#app.engine.ann.rename(label, name);
        dialog.close('ok');
        await this.#app.refresh();
        toast(`Renamed “${label}” to “${name}”.`, 'success');
        $('class-list').querySelector(`li[data-label="${CSS.escape(name)}"] button`)?.focus();
      } catch (err) {
        error.textContent = err.code === 'ALREADY_EXISTS' ? `“${name}” is taken: pick another name.` : describe(err);
      }
    };
    const form = $('rename-form');
    form.addEventListener('submit', onSubmit);
    dialog.addEventListener('close', () => form.removeEventListener('submit', onSubmit), { once: true });
  }

  async delete(c) {
    const ok = await confirmDialog({
      title: `Delete “${c.label}”?`,
      text: `Its ${plural(c.examples, 'picture')} will be removed from this device. You cannot undo this (unless you exported the gallery).`,
      ok: 'Delete',
    });
    if (!ok) return;
    const index = this.#app.classes.findIndex((x) => x.label === c.label);
    try {
      await this.#app.engine.ann.remove(c.label);
      await this.#app.refresh();
      toast(`Deleted “${c.label}”.`, 'success');
    } catch (err) {
      toast(`Could not delete “${c.label}”: ${describe(err)}`, 'error', 6000);
    }
    const buttons = $('class-list').querySelectorAll('li .card-actions button.danger');
    (buttons[Math.min(index, buttons.length - 1)] ?? $('import')).focus();
  }

  async export() {
    try {
      const blob = await this.#app.engine.ann.export();
      const date = new Date().toISOString().slice(0, 10);
      const a = h('a', { href: URL.createObjectURL(blob), download: `metricann-gallery-${date}.metricann` });
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(a.href), 10_000);
      toast(`Exported ${plural(this.#app.classes.length, 'class', 'classes')} (${formatBytes(blob.size)}).`, 'success');
    } catch (err) {
      toast(`Export failed: ${describe(err)}`, 'error', 6000);
    }
  }

  async import(file) {
    const n = this.#app.classes.length;
    if (n > 0) {
      const ok = await confirmDialog({
        title: 'Replace the gallery?',
        text: `The ${plural(n, 'class', 'classes')} here will be replaced by the ones in ${file.name}.`,
        ok: 'Replace',
      });
      if (!ok) return;
    }
    this.#app.busy = true;
    try {
      await this.#app.engine.importGallery(file);
      await this.#app.refresh();
      toast(`Imported ${plural(this.#app.classes.length, 'class', 'classes')} from ${file.name}.`, 'success');
    } catch (err) {
      const why = err.code === 'CORRUPT' ? `${file.name} is not a MetricANN gallery, or it is damaged` : describe(err);
      toast(`Import failed, nothing changed: ${why}`, 'error', 8000);
      await this.#app.refresh().catch(() => {});
    } finally {
      this.#app.busy = false;
    }
  }
}

/** What an adaptation measured, in words. */
function outcome(result) {
  const pct = (x) => `${Math.round(100 * x)} %`;
  const held = result.heldOut;
  if (!held) return result.adapted ? 'Adapted to your classes.' : 'Not adapted: the model was left as it was.';
  const what = held.views ? 'altered copies of your pictures' : 'pictures set aside for the check';
  const figures = `${pct(held.top1Before)} → ${pct(held.top1After)} recognised`;
  return result.adapted
    ? `Adapted to your classes: on ${what}, ${figures}.`
    : `Not adapted: on ${what} it did not do better (${figures}), so the model was left as it was.`;
}

function when(iso) {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  return d.toLocaleDateString(undefined, { day: 'numeric', month: 'short', year: 'numeric' });
}
