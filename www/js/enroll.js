// Enroll: 1–3 pictures (camera snapshots, chosen or dropped files), a name, save.
import { $, h, toast, describe, plural } from './ui.js';
import { Camera } from './camera.js';

export const MAX_SHOTS = 3;
const THUMB = 96;

export class Enroll {
  /** [{ blob, url, name }]: the pictures to enroll (Blobs can be sent again after a failure). */
  shots = [];
  #app;
  #saving = false;

  constructor(app) {
    this.#app = app;
    $('snap').addEventListener('click', () => this.snap($('enroll-video')));
    $('choose-files').addEventListener('click', () => $('file-input').click());
    $('file-input').addEventListener('change', (e) => {
      this.addFiles([...e.target.files]);
      e.target.value = '';
    });
    const zone = $('view-enroll');
    zone.addEventListener('dragover', (e) => {
      if (![...(e.dataTransfer?.types ?? [])].includes('Files')) return;
      e.preventDefault();
      $('dropzone').classList.add('over');
    });
    zone.addEventListener('dragleave', (e) => {
      if (!zone.contains(e.relatedTarget)) $('dropzone').classList.remove('over');
    });
    zone.addEventListener('drop', (e) => {
      e.preventDefault();
      $('dropzone').classList.remove('over');
      this.addFiles([...(e.dataTransfer?.files ?? [])]);
    });
    $('class-name').addEventListener('input', () => this.update());
    $('enroll-form').addEventListener('submit', (e) => {
      e.preventDefault();
      this.save();
    });
    this.#renderShots();
    this.update();
  }

  /** Adds the current frame of `video` (its centre square). */
  async snap(video) {
    if (this.shots.length >= MAX_SHOTS) {
      toast(`At most ${MAX_SHOTS} pictures: remove one first.`);
      return;
    }
    const frame = await Camera.grab(video);
    if (!frame) {
      toast('No camera picture yet: wait for the camera, or choose files.', 'error');
      return;
    }
    const canvas = new OffscreenCanvas(frame.width, frame.height);
    canvas.getContext('2d').drawImage(frame, 0, 0);
    frame.close();
    const blob = await canvas.convertToBlob({ type: 'image/png' });
    this.#add(blob, `snapshot ${this.shots.length + 1}`);
  }

  async addFiles(files) {
    for (const file of files) {
      if (this.shots.length >= MAX_SHOTS) {
        toast(`At most ${MAX_SHOTS} pictures a save: the rest were left out.`);
        break;
      }
      if (file.type && !file.type.startsWith('image/')) {
        toast(`${file.name} is not an image.`, 'error');
        continue;
      }
      try {
        (await createImageBitmap(file)).close();
      } catch {
        toast(`${file.name} is not an image this browser can read.`, 'error');
        continue;
      }
      this.#add(file, file.name);
    }
  }

  #add(blob, name) {
    this.shots.push({ blob, name, url: URL.createObjectURL(blob) });
    this.#renderShots();
    this.update();
  }

  remove(i) {
    const [shot] = this.shots.splice(i, 1);
    if (shot) URL.revokeObjectURL(shot.url);
    this.#renderShots();
    this.update();
    ($('shots').querySelector('button') ?? $('snap')).focus();
  }

  clear() {
    for (const s of this.shots) URL.revokeObjectURL(s.url);
    this.shots = [];
    this.#renderShots();
    $('class-name').value = '';
    this.update();
  }

  #renderShots() {
    $('shots').replaceChildren(
      ...this.shots.map((s, i) =>
        h(
          'li',
          {},
          h('img', { src: s.url, alt: `Picture ${i + 1}: ${s.name}` }),
          h('button', { type: 'button', class: 'remove', 'aria-label': `Remove picture ${i + 1}`, title: 'Remove', onclick: () => this.remove(i) }, '×'),
        ),
      ),
    );
    const left = MAX_SHOTS - this.shots.length;
    $('shots-hint').textContent =
      this.shots.length === 0
        ? 'Drop image files here, or snap from the camera'
        : left > 0
          ? `${plural(this.shots.length, 'picture')}; up to ${left} more`
          : `${MAX_SHOTS} pictures: ready to save`;
    $('snap').disabled = left === 0 || Boolean(this.#app.camera.problem);
    $('snap-count').textContent = this.shots.length ? `${this.shots.length}/${MAX_SHOTS}` : '';
  }

  /** Updates the Save button and the name hint. */
  update() {
    const name = $('class-name').value.trim();
    const known = this.#app.classes.find((c) => c.label === name);
    const hint = $('class-name-hint');
    if (known) hint.textContent = `Adds to “${known.label}” (${plural(known.examples, 'picture')} so far).`;
    else hint.textContent = 'A new name, or an existing one to add pictures to it.';
    const writable = this.#app.writable;
    $('save').disabled = this.#saving || !this.#app.engine.ann || !writable || !name || this.shots.length === 0;
    $('save').textContent = this.#saving ? 'Saving…' : known ? `Add to “${known.label}”` : 'Save';
  }

  async save() {
    const label = $('class-name').value.trim();
    const ann = this.#app.engine.ann;
    if (!label || this.shots.length === 0 || !ann || this.#saving) return;
    this.#saving = true;
    this.update();
    try {
      const known = this.#app.classes.find((c) => c.label === label);
      const now = new Date().toISOString();
      const metadata = {
        thumb: known?.metadata?.thumb ?? (await thumbnail(this.shots[0].blob)),
        created: known?.metadata?.created ?? now,
        updated: now,
      };
      const res = await ann.enroll(label, this.shots.map((s) => s.blob), { keepImages: true, metadata });
      await this.#app.refresh();
      toast(`Saved “${res.label}” (${plural(res.examples, 'picture')}). Point the camera at it.`, 'success');
      this.#app.persistOnce();
      this.clear();
      location.hash = '#camera';
    } catch (e) {
      toast(`Could not save “${label}”: ${describe(e)}`, 'error', 6000);
    } finally {
      this.#saving = false;
      this.update();
    }
  }
}

/** A small square JPEG (data: URL) of the centre of `blob`, kept in the class's metadata. */
export async function thumbnail(blob) {
  const bitmap = await createImageBitmap(blob);
  const side = Math.min(bitmap.width, bitmap.height);
  const canvas = document.createElement('canvas');
  canvas.width = canvas.height = THUMB;
  const ctx = canvas.getContext('2d');
  ctx.imageSmoothingQuality = 'high';
  ctx.drawImage(bitmap, (bitmap.width - side) / 2, (bitmap.height - side) / 2, side, side, 0, 0, THUMB, THUMB);
  bitmap.close();
  return canvas.toDataURL('image/jpeg', 0.82);
}
