// The camera: one MediaStream shown in every <video> that wants it, the device
// list, and the square the model looks at (the centre of the frame).

/** Side, in pixels, of the square crop sent to the model (it resizes to its input size). */
export const CROP = 256;

const DEVICE_KEY = 'metricann-demo.camera';

export class Camera extends EventTarget {
  stream = null;
  videos = [];
  /** Why the camera is not running (a sentence), or null. */
  problem = null;

  constructor(videos) {
    super();
    this.videos = videos;
    for (const v of videos) {
      v.addEventListener('loadedmetadata', () => placeReticle(v));
      new ResizeObserver(() => placeReticle(v)).observe(v);
    }
    navigator.mediaDevices?.addEventListener?.('devicechange', () => this.#emitDevices());
  }

  /** Starts (or switches to) a camera: the saved one, else the rear one when there is a choice. */
  async start(deviceId = localStorage.getItem(DEVICE_KEY) || '') {
    this.stop();
    this.problem = null;
    if (!navigator.mediaDevices?.getUserMedia) {
      this.problem = window.isSecureContext
        ? 'This browser has no camera access (getUserMedia).'
        : 'The camera needs a secure page: open the app over https:// or from localhost.';
      this.#emit();
      return false;
    }
    const size = { width: { ideal: 1280 }, height: { ideal: 720 } };
    const video = deviceId ? { deviceId: { exact: deviceId }, ...size } : { facingMode: { ideal: 'environment' }, ...size };
    try {
      this.stream = await navigator.mediaDevices.getUserMedia({ video, audio: false });
    } catch (e) {
      if (deviceId && (e.name === 'OverconstrainedError' || e.name === 'NotFoundError')) {
        localStorage.removeItem(DEVICE_KEY); // that camera is gone: take the default
        return this.start('');
      }
      this.problem = explain(e);
      this.#emit();
      return false;
    }
    const track = this.stream.getVideoTracks()[0];
    track.addEventListener('ended', () => {
      this.problem = 'The camera stopped (unplugged, or taken by another app).';
      this.stream = null;
      this.#emit();
    });
    for (const v of this.videos) {
      v.srcObject = this.stream;
      v.play().catch(() => {});
    }
    this.#emit();
    await this.#emitDevices();
    return true;
  }

  /** Switches to another camera and remembers it. */
  async use(deviceId) {
    if (deviceId) localStorage.setItem(DEVICE_KEY, deviceId);
    else localStorage.removeItem(DEVICE_KEY);
    return this.start(deviceId);
  }

  stop() {
    for (const t of this.stream?.getTracks() ?? []) t.stop();
    this.stream = null;
  }

  get deviceId() {
    return this.stream?.getVideoTracks()[0]?.getSettings().deviceId ?? '';
  }

  get label() {
    return this.stream?.getVideoTracks()[0]?.label ?? '';
  }

  async devices() {
    try {
      return (await navigator.mediaDevices.enumerateDevices()).filter((d) => d.kind === 'videoinput');
    } catch {
      return [];
    }
  }

  /** The centre square of `video`'s current frame, as an ImageBitmap of CROP × CROP (null if no frame yet). */
  static async grab(video, size = CROP) {
    const w = video.videoWidth;
    const h = video.videoHeight;
    if (!w || !h || video.readyState < 2) return null;
    const side = Math.min(w, h);
    return createImageBitmap(video, (w - side) / 2, (h - side) / 2, side, side, {
      resizeWidth: size,
      resizeHeight: size,
      resizeQuality: 'high',
    });
  }

  #emit() {
    this.dispatchEvent(new Event('change'));
  }

  async #emitDevices() {
    this.dispatchEvent(new CustomEvent('devices', { detail: await this.devices() }));
  }
}

function explain(e) {
  switch (e?.name) {
    case 'NotAllowedError':
    case 'SecurityError':
      return 'Camera access was refused. Allow the camera for this site (the icon in the address bar), then try again.';
    case 'NotFoundError':
    case 'OverconstrainedError':
      return 'No camera was found. You can still enroll and test with image files.';
    case 'NotReadableError':
    case 'AbortError':
      return 'The camera is busy: another app or tab may be using it.';
    default:
      return `The camera could not start: ${e?.message ?? e}`;
  }
}

/**
 * Puts the video's .reticle sibling over the square the model sees: the centre
 * square of the frame, wherever object-fit placed the frame in the element.
 */
export function placeReticle(video) {
  const reticle = video.parentElement?.querySelector('.reticle');
  const vw = video.videoWidth;
  const vh = video.videoHeight;
  if (!reticle) return;
  if (!vw || !vh) {
    reticle.hidden = true;
    return;
  }
  const bw = video.clientWidth;
  const bh = video.clientHeight;
  const fit = getComputedStyle(video).objectFit;
  const scale = fit === 'cover' ? Math.max(bw / vw, bh / vh) : Math.min(bw / vw, bh / vh);
  const side = Math.min(vw, vh) * scale;
  const shown = Math.min(side, bw, bh);
  Object.assign(reticle.style, {
    width: `${shown}px`,
    height: `${shown}px`,
    left: `${video.offsetLeft + (bw - shown) / 2}px`,
    top: `${video.offsetTop + (bh - shown) / 2}px`,
  });
  reticle.hidden = false;
}
