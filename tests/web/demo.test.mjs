// End-to-end tests of the demo app (www/) in Debian's headless Chromium, with a
// fake camera that films a photo printed on a card (a y4m video made by ffmpeg).
// Chromium takes one video file per launch, so the browser is launched three times
// on the same profile: filming a photo that gets enrolled from the camera, a tilted,
// darker print of one enrolled from a file, and one that never is.
//
// Needs the package (METRICANN_PKG, default pkg/) and the demo's default model
// www/models/objects.bundle (`make test-demo` provides both). Screenshots go to METRICANN_SCREENSHOTS
// (default target/demo-screenshots).
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, mkdir, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { ROOT, PKG, CHROMIUM, BASE_ARGS, watch } from './lib.mjs';
import { startServer } from '../../scripts/demo-server.mjs';

const WWW = join(ROOT, 'www');
const SHOTS = process.env.METRICANN_SCREENSHOTS ?? join(ROOT, 'target/demo-screenshots');
/** Photos that scikit-image ships (tests/fixtures/imagenet). */
const PHOTOS = join(ROOT, 'tests/fixtures/imagenet');
/** Filmed in the first launch and enrolled from camera snapshots. */
const KNOWN = { label: 'cat', file: join(PHOTOS, 'chelsea.png') };
/** Filmed in the third launch; never enrolled. */
const NEVER = { label: 'rocket', file: join(PHOTOS, 'rocket.png') };
/** Enrolled from image files (one dropped, one chosen), so that the live top-K has three rows. */
const FROM_FILES = [
  { label: 'coffee', files: ['coffee.png'], how: 'drop' },
  { label: 'astronaut', files: ['astronaut.png'], how: 'choose' },
];
/** Filmed in the second launch, tilted and darker: enrolled only from its file. */
const FILMED_FILE = { label: 'coffee', file: join(PHOTOS, 'coffee.png') };
const ENROLLED = [KNOWN.label, ...FROM_FILES.map((c) => c.label)];
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 360, height: 640 };

/**
 * A 640×480 y4m of `png` on a card on a grey desk (Chromium's fake camera loops it);
 * `tilted`: the card turned by 8° and the room darker, as a hand-held phone sees a print.
 */
function filmOf(png, out, tilted = false) {
  const camera = tilted ? ',rotate=0.14:fillcolor=0x4a5563,eq=brightness=-0.08:contrast=0.9' : '';
  execFileSync('ffmpeg', [
    '-loglevel', 'error', '-y', '-loop', '1', '-i', png,
    '-vf', `scale=360:360:flags=bilinear,pad=400:400:20:20:white,pad=640:480:120:40:0x4a5563${camera},format=yuv420p`,
    '-r', '5', '-frames:v', '5', '-f', 'yuv4mpegpipe', out,
  ]);
  return out;
}

async function launch(profile, video) {
  const { chromium } = await import('playwright-core');
  return chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: [...BASE_ARGS, '--use-fake-device-for-media-stream', `--use-file-for-fake-video-capture=${video}`],
    permissions: ['camera'],
    viewport: DESKTOP,
    acceptDownloads: true,
  });
}

/** Records what the model-loading bar showed (before the app's scripts run). */
function recordLoading() {
  window.__loading = [];
  document.addEventListener('DOMContentLoaded', () => {
    const label = document.getElementById('load-label');
    const bar = document.getElementById('load-progress');
    new MutationObserver(() => {
      window.__loading.push({ label: label.textContent, value: bar.hasAttribute('value') ? bar.value : null });
    }).observe(document.getElementById('loader'), { subtree: true, childList: true, characterData: true, attributes: true });
  });
}

async function open(context, origin) {
  const page = context.pages()[0] ?? (await context.newPage());
  watch(page, 'demo');
  await page.addInitScript(recordLoading);
  await page.goto(`${origin}/#camera`);
  await ready(page);
  return page;
}

async function ready(page) {
  await page.waitForFunction(() => document.body.dataset.state !== 'loading', null, { timeout: 120_000 }).catch(async (e) => {
    const at = await page.evaluate(() => `${document.getElementById('load-label').textContent} ${document.getElementById('load-detail').textContent}`);
    throw new Error(`the app was still loading (the bar said "${at.trim()}"): ${e.message.split('\n')[0]}`);
  });
  const state = await page.evaluate(() => ({ state: document.body.dataset.state, banner: document.getElementById('banner-text').textContent }));
  assert.equal(state.state, 'ready', `the app did not start: ${state.banner}`);
}

/** Waits for the live overlay to show a result satisfying `want` ({ state, top, score }). */
async function live(page, want = () => true, what = 'a live result') {
  const handle = await page
    .waitForFunction(
      (src) => {
        const d = document.getElementById('results').dataset;
        if (d.state !== 'match' && d.state !== 'unknown') return false;
        const r = { state: d.state, top: d.top, score: Number(d.score) };
        return new Function(`return (${src})`)()(r) ? r : false;
      },
      want.toString(),
      { timeout: 30_000 },
    )
    .catch(async (e) => {
      const d = await page.evaluate(() => ({ ...document.getElementById('results').dataset }));
      throw new Error(`waiting for ${what}: ${e.message.split('\n')[0]}; the overlay shows ${JSON.stringify(d)}`);
    });
  return handle.jsonValue();
}

async function go(page, view) {
  await page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name: new RegExp(`^${view}`, 'i') }).click();
  await page.waitForFunction((v) => document.body.dataset.view === v, view.toLowerCase());
}

async function snapshot(page, name) {
  await page.evaluate(() => {
    document.getElementById('toasts').replaceChildren();
    window.scrollTo(0, 0);
  });
  await page.waitForTimeout(300);
  await page.screenshot({ path: join(SHOTS, name) });
}

async function setThreshold(page, value) {
  await page.evaluate((v) => {
    const el = document.getElementById('threshold');
    el.value = String(v);
    el.dispatchEvent(new Event('input', { bubbles: true }));
  }, value);
}

/** Interactive elements of the accessibility tree that have no accessible name. */
async function unnamedControls(page) {
  const cdp = await page.context().newCDPSession(page);
  try {
    const { nodes } = await cdp.send('Accessibility.getFullAXTree');
    const roles = new Set(['button', 'link', 'textbox', 'combobox', 'slider', 'checkbox', 'radio', 'spinbutton', 'searchbox', 'switch', 'tab', 'listbox', 'PopUpButton', 'menuitem']);
    const controls = nodes.filter((n) => !n.ignored && roles.has(n.role?.value));
    return {
      count: controls.length,
      unnamed: controls.filter((n) => !String(n.name?.value ?? '').trim()).map((n) => `${n.role.value} (backend node ${n.backendDOMNodeId})`),
    };
  } finally {
    await cdp.detach();
  }
}

/** What Tab reaches, in order, from the top of the page (one lap). */
async function tabStops(page, max = 40) {
  // Start where a keyboard user starts: the first stop, the skip link.
  await page.evaluate(() => document.querySelector('.skip-link').focus());
  const seen = ['skip link'];
  for (let i = 0; i < max; i++) {
    await page.keyboard.press('Tab');
    const id = await page.evaluate(() => {
      const el = document.activeElement;
      if (!el || el === document.body) return null;
      return el.id || el.getAttribute('aria-label') || el.textContent.trim().replace(/\s+/g, ' ');
    });
    if (id === null || seen.includes(id)) break;
    seen.push(id);
  }
  return seen;
}

test('the demo app (www/) in headless Chromium with a fake camera', { timeout: 600_000 }, async (t) => {
  for (const f of [join(WWW, 'models/objects.bundle'), join(PKG, 'index.js')]) {
    assert.ok(existsSync(f), `${f} is missing: run make test-demo (it builds the package and provides the model)`);
  }
  await mkdir(SHOTS, { recursive: true });
  const tmp = await mkdtemp(join(tmpdir(), 'metricann-demo-'));
  t.after(() => rm(tmp, { recursive: true, force: true }));
  const known = filmOf(KNOWN.file, join(tmp, 'known.y4m'));
  const never = filmOf(NEVER.file, join(tmp, 'never.y4m'));
  const filmedFile = filmOf(FILMED_FILE.file, join(tmp, 'filmed-file.y4m'), true);
  const profile = join(tmp, 'profile');

  const server = await startServer({ mounts: { '/': WWW, '/pkg/': PKG } });
  t.after(() => server.close());
  let selfScore;

  // ---- first launch: the camera films KNOWN ----
  let context = await launch(profile, known);
  try {
    let page;
    await t.test('first visit: the model loads with a progress bar; backend, camera and offline cache come up', async () => {
      const t0 = Date.now();
      page = await open(context, server.origin);
      const loading = await page.evaluate(() => window.__loading);
      const labels = [...new Set(loading.map((l) => l.label))];
      const backend = await page.locator('#backend-chip').textContent();
      console.log(`# ready in ${((Date.now() - t0) / 1000).toFixed(1)} s on ${backend}; the loading bar said: ${labels.join(' → ')}`);
      assert.ok(labels.some((l) => /engine/.test(l)), 'the engine download is shown');
      assert.ok(labels.some((l) => /model/.test(l)), 'the model download is shown');
      assert.ok(loading.some((l) => /model/.test(l.label) && l.value === 1), 'the model bar reaches 100 %');
      assert.equal(await page.locator('#loader').isHidden(), true, 'the bar goes away when ready');
      assert.match(backend, /^(CPU|WebGPU)$/);
      // The demo server isolates the page (COOP + COEP): index builds get every core.
      const cores = await page.evaluate(() => navigator.hardwareConcurrency);
      const engine = await page.locator('#fact-backend').textContent();
      if (cores > 1) assert.equal(engine, `CPU (WebAssembly) · index builds on ${Math.min(cores, 16)} threads`);
      await page.waitForFunction(() => document.body.dataset.camera === 'on');
      assert.match(await page.locator('#camera-select').textContent(), /known\.y4m/, 'the device picker lists the camera');
      await page.waitForFunction(() => document.body.dataset.offline === 'ready', null, { timeout: 60_000 });
      assert.equal(await page.locator('#offline-chip').textContent(), 'Works offline');
      await assert.doesNotReject(page.getByText('Nothing enrolled yet').first().waitFor());
    });

    await t.test('enroll from camera snapshots: the live result shows that label at top-1', async () => {
      await go(page, 'Enroll');
      const snap = page.getByRole('button', { name: /^Snap/ });
      await snap.click();
      await snap.click();
      await assert.doesNotReject(page.locator('#shots li').nth(1).waitFor());
      await page.getByLabel('Name', { exact: true }).fill(KNOWN.label);
      await snapshot(page, 'enroll-1280x800.png');
      await page.getByRole('button', { name: 'Save' }).click();
      await page.waitForFunction(() => document.body.dataset.view === 'camera');
      const r = await live(page, (r) => r.state === 'match', 'a match');
      selfScore = r.score;
      assert.equal(r.top, KNOWN.label);
      const best = page.locator('#result-list li.best');
      assert.equal(await best.locator('.label').textContent(), KNOWN.label);
      assert.match(await best.locator('img').getAttribute('src'), /^data:image\/jpeg;base64,/, 'the class thumbnail is shown');
      await page.waitForFunction(() => Number(document.body.dataset.fps) > 0);
      const fps = await page.locator('#fps').textContent();
      console.log(`# live: ${r.top} at top-1, score ${r.score.toFixed(4)}, ${fps}, ${await page.locator('#fact-latency').textContent()}`);
      assert.match(fps, /^\d+(\.\d)? fps$/);
      assert.equal(await page.locator('#class-count').textContent(), '1');
    });

    await t.test('enroll from dropped and chosen image files; the camera still shows its class at top-1', async () => {
      for (const c of FROM_FILES) {
        await go(page, 'Enroll');
        const paths = c.files.map((f) => join(PHOTOS, f));
        if (c.how === 'drop') {
          const files = await Promise.all(paths.map(async (p) => [...(await readFile(p))]));
          await page.evaluate((files) => {
            const dt = new DataTransfer();
            files.forEach((bytes, i) => dt.items.add(new File([new Uint8Array(bytes)], `dropped-${i}.png`, { type: 'image/png' })));
            document.getElementById('dropzone').dispatchEvent(new DragEvent('drop', { dataTransfer: dt, bubbles: true, cancelable: true }));
          }, files);
        } else {
          await page.locator('#file-input').setInputFiles(paths);
        }
        await page.locator('#shots li').nth(paths.length - 1).waitFor();
        await page.getByLabel('Name', { exact: true }).fill(c.label);
        await page.getByRole('button', { name: 'Save' }).click();
        await page.waitForFunction(() => document.body.dataset.view === 'camera');
      }
      assert.equal(await page.locator('#class-count').textContent(), String(ENROLLED.length));
      await go(page, 'Gallery');
      for (const c of FROM_FILES) {
        const card = page.locator(`#class-list li[data-label="${c.label}"]`);
        assert.match(await card.textContent(), new RegExp(`${c.files.length} pictures?`));
        assert.match(await card.locator('img').getAttribute('src'), /^data:image\/jpeg/);
      }
      await go(page, 'Camera');
      const r = await live(page, (r) => r.state === 'match' && document.querySelectorAll('#result-list li').length === 3, 'three matches');
      assert.equal(r.top, KNOWN.label);
    });

    await t.test('screenshots of the camera, enroll and gallery views at 1280×800 and 360×640', async () => {
      await live(page, (r) => r.state === 'match');
      await snapshot(page, 'camera-1280x800.png');
      await go(page, 'Gallery');
      await page.locator('#class-list li').first().waitFor();
      await snapshot(page, 'gallery-1280x800.png');
      await page.setViewportSize(PHONE);
      await go(page, 'Camera');
      await live(page, (r) => r.state === 'match');
      await snapshot(page, 'camera-360x640.png');
      await go(page, 'Enroll');
      await page.getByRole('button', { name: /^Snap/ }).click();
      await page.getByLabel('Name', { exact: true }).fill(KNOWN.label);
      await snapshot(page, 'enroll-360x640.png');
      await page.getByRole('button', { name: 'Remove picture 1' }).click();
      await page.getByLabel('Name', { exact: true }).fill('');
      await go(page, 'Gallery');
      await snapshot(page, 'gallery-360x640.png');
      // Nothing of the layout is wider than the phone's screen.
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `the page is ${overflow}px wider than 360px`);
      await page.setViewportSize(DESKTOP);
      console.log(`# screenshots: ${SHOTS}`);
    });

    await t.test('keyboard: every control has an accessible name, Tab reaches the main controls, views and rename work from the keyboard', async () => {
      const expected = {
        Camera: ['camera-select', 'threshold', 'topk', 'pause'],
        Enroll: ['snap', 'choose-files', 'class-name'],
        Gallery: ['export', 'import', `Rename ${KNOWN.label}`, `Delete ${KNOWN.label}`],
      };
      for (const [view, ids] of Object.entries(expected)) {
        await go(page, view);
        const { count, unnamed } = await unnamedControls(page);
        assert.deepEqual(unnamed, [], `${view}: controls without an accessible name`);
        const stops = await tabStops(page);
        for (const id of ['Camera', 'Enroll', `Gallery`, ...ids]) {
          assert.ok(stops.some((s) => s === id || s.startsWith(`${id} `)), `${view}: Tab does not reach ${id}; it reaches ${JSON.stringify(stops)}`);
        }
        console.log(`# ${view}: ${count} named controls; Tab order: ${stops.join(' → ')}`);
      }
      // Views by keyboard: focus the Camera tab, Enter.
      await page.getByRole('navigation', { name: 'Views' }).getByRole('link', { name: 'Camera' }).focus();
      await page.keyboard.press('Enter');
      await page.waitForFunction(() => document.body.dataset.view === 'camera');
      // The threshold slider by keyboard.
      const before = Number(await page.locator('#threshold').inputValue());
      await page.locator('#threshold').focus();
      await page.keyboard.press('ArrowLeft');
      assert.equal(await page.locator('#threshold-value').textContent(), (before - 0.01).toFixed(2));
      await page.keyboard.press('ArrowRight');
      // Rename in the gallery, by keyboard only (the dialog's controls are named too).
      await go(page, 'Gallery');
      await page.getByRole('button', { name: `Rename ${KNOWN.label}` }).focus();
      await page.keyboard.press('Enter');
      assert.equal(await page.locator('#rename-dialog').getAttribute('open'), '');
      assert.deepEqual((await unnamedControls(page)).unnamed, [], 'rename dialog: controls without an accessible name');
      await page.keyboard.press('Control+A');
      await page.keyboard.type('up');
      await page.keyboard.press('Enter');
      await page.locator('#class-list li[data-label="up"]').waitFor();
      await go(page, 'Camera');
      assert.equal((await live(page, (r) => r.top === 'up', 'the new name')).top, 'up');
      await go(page, 'Gallery');
      await page.getByRole('button', { name: 'Rename up' }).click();
      await page.getByLabel('New name').fill(KNOWN.label);
      await page.getByRole('button', { name: 'Rename', exact: true }).click();
      await page.locator(`#class-list li[data-label="${KNOWN.label}"]`).waitFor();
      await go(page, 'Camera');
    });

    await t.test('offline: after the first visit, the app, the model and the gallery work with the network gone', async () => {
      await context.setOffline(true);
      server.setDown(true);
      try {
        await page.reload();
        await ready(page);
        assert.equal(await page.locator('#offline-chip').textContent(), 'Offline · cached');
        assert.equal(await page.locator('#class-count').textContent(), String(ENROLLED.length));
        const r = await live(page, (r) => r.state === 'match', 'a match while offline');
        assert.equal(r.top, KNOWN.label);
        // Enrolling works offline too: one more picture of the class.
        await go(page, 'Enroll');
        await page.getByRole('button', { name: /^Snap/ }).click();
        await page.getByLabel('Name', { exact: true }).fill(KNOWN.label);
        await page.getByRole('button', { name: `Add to “${KNOWN.label}”` }).click();
        await page.waitForFunction(() => document.body.dataset.view === 'camera');
        assert.equal((await live(page, (r) => r.state === 'match', 'a match after enrolling offline')).top, KNOWN.label);
        await go(page, 'Gallery');
        assert.match(await page.locator(`#class-list li[data-label="${KNOWN.label}"]`).textContent(), /3 pictures/);
        console.log(`# offline: reloaded from the service worker's cache, ${r.top} at top-1 (score ${r.score.toFixed(4)}); enrolled a 3rd picture offline`);
      } finally {
        server.setDown(false);
        await context.setOffline(false);
      }
    });
  } finally {
    await context.close();
  }

  // ---- second launch, same profile: the camera films a tilted print of a photo enrolled from its file ----
  context = await launch(profile, filmedFile);
  try {
    await t.test('a photo enrolled from a file is recognised when the camera films a tilted, darker print of it', async () => {
      const page = await open(context, server.origin);
      assert.equal(await page.locator('#model-select').inputValue(), 'objects', 'the objects model is the default');
      const threshold = Number(await page.locator('#threshold').inputValue());
      const r = await live(page, (r) => r.state === 'match', 'a match');
      const rows = await page.locator('#result-list li .score').allTextContents();
      console.log(`# filmed print of ${FILMED_FILE.label}: ${r.top} at ${r.score.toFixed(4)} (threshold ${threshold}); scores shown ${rows.join(', ')}`);
      assert.equal(r.top, FILMED_FILE.label);
      assert.ok(new Set(rows).size === rows.length, `the classes score differently: ${rows.join(', ')}`);
      await snapshot(page, 'camera-photo-1280x800.png');
    });

    await t.test('"Improve recognition" adapts the model to the gallery with a progress bar; the live view recognises with it; undo goes back', async () => {
      const page = context.pages()[0];
      await go(page, 'Gallery');
      const run = page.getByRole('button', { name: 'Improve recognition' });
      assert.equal(await run.isEnabled(), true, 'every class kept its pictures');
      await run.click();
      await page.locator('#adapt-progress').waitFor({ state: 'visible' });
      await page.waitForFunction(() => /^(Adapted|Not adapted)/.test(document.getElementById('adapt-status').textContent), null, {
        timeout: 180_000,
      });
      const status = await page.locator('#adapt-status').textContent();
      console.log(`# demo adapt: ${status}`);
      assert.match(status, /\d+ % → \d+ % recognised/, 'the held-out check is reported');
      assert.equal(await page.locator('#adapt-progress').isVisible(), false);
      const adapted = status.startsWith('Adapted');
      assert.equal(await page.locator('#adapt-reset').isVisible(), adapted);
      await go(page, 'Camera');
      assert.equal((await live(page, (r) => r.state === 'match', 'a match after adapting')).top, FILMED_FILE.label);
      if (adapted) {
        await go(page, 'Gallery');
        await page.getByRole('button', { name: 'Undo the improvement' }).click();
        await page.getByRole('dialog').getByRole('button', { name: 'Undo' }).click();
        await page.locator('#adapt-reset').waitFor({ state: 'hidden' });
        await go(page, 'Camera');
        assert.equal((await live(page, (r) => r.state === 'match', 'a match after undoing')).top, FILMED_FILE.label);
      }
    });

    await t.test('switching the model re-embeds the kept pictures; switching back recognises again', async () => {
      const page = context.pages()[0];
      await page.locator('#model-select').selectOption('glyphs');
      await page.waitForFunction(() => document.getElementById('fact-model').textContent.startsWith('glyphs'), null, { timeout: 120_000 });
      assert.equal(await page.locator('#class-count').textContent(), String(ENROLLED.length), 'every class survives the switch');
      await live(page, () => true, 'a result with the glyph model');
      await page.locator('#model-select').selectOption('objects');
      await page.waitForFunction(() => document.getElementById('fact-model').textContent.startsWith('objects'), null, { timeout: 120_000 });
      assert.equal((await live(page, (r) => r.state === 'match', 'a match after switching back')).top, FILMED_FILE.label);
    });
  } finally {
    await context.close();
  }

  // ---- third launch, same profile: the camera films NEVER ----
  context = await launch(profile, never);
  try {
    let page;
    await t.test('a class never enrolled shows "unknown" or a low score', async () => {
      page = await open(context, server.origin);
      const threshold = Number(await page.locator('#threshold').inputValue());
      const r = await live(page);
      console.log(
        `# never-enrolled ${NEVER.label}: ${r.state}, top-1 ${r.top} at ${r.score.toFixed(4)} ` +
          `(${KNOWN.label} scored ${selfScore.toFixed(4)} on its own camera picture; threshold ${threshold})`,
      );
      assert.ok(r.state === 'unknown' || r.score < selfScore, JSON.stringify(r));
      // Whatever the model's scores, a best score under the threshold reads "unknown", with "Enroll it".
      await setThreshold(page, 1);
      const u = await live(page, (r) => r.state === 'unknown', '"unknown" at threshold 1');
      assert.ok(ENROLLED.includes(u.top), `the closest class is still listed: ${u.top}`);
      assert.equal(await page.locator('.unknown-item .label').textContent(), 'Unknown');
      await page.getByRole('button', { name: 'Enroll it' }).click();
      await page.waitForFunction(() => document.body.dataset.view === 'enroll');
      assert.equal(await page.locator('#shots li').count(), 1, 'the frame became the first picture');
      await page.getByRole('button', { name: 'Remove picture 1' }).click();
      await setThreshold(page, threshold);
    });

    await t.test('export, delete (gone, also after a reload), import brings the gallery back', async () => {
      await go(page, 'Gallery');
      const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('button', { name: 'Export…' }).click()]);
      const file = join(tmp, download.suggestedFilename());
      await download.saveAs(file);
      assert.match(download.suggestedFilename(), /^metricann-gallery-\d{4}-\d\d-\d\d\.metricann$/);
      const size = (await readFile(file)).length;
      assert.ok(size > 0);

      for (const label of ENROLLED) {
        await page.getByRole('button', { name: `Delete ${label}` }).click();
        await page.getByRole('dialog').getByRole('button', { name: 'Delete' }).click();
        await page.locator(`#class-list li[data-label="${label}"]`).waitFor({ state: 'detached' });
      }
      assert.equal(await page.locator('#class-count').textContent(), '0');
      assert.equal(await page.locator('#gallery-empty').isVisible(), true);
      await page.reload();
      await ready(page);
      assert.equal(await page.locator('#class-list li').count(), 0, 'still gone after a reload');
      await go(page, 'Camera');
      await page.waitForFunction(() => document.getElementById('results').dataset.state === 'empty');

      await go(page, 'Gallery');
      await page.locator('#import-input').setInputFiles(file);
      await page.locator(`#class-list li[data-label="${KNOWN.label}"]`).waitFor();
      assert.equal(await page.locator('#class-list li').count(), ENROLLED.length);
      console.log(`# export: ${download.suggestedFilename()} (${size} bytes) → delete all ${ENROLLED.length} classes → reload → import: all back`);
      await go(page, 'Camera');
      await live(page);
    });
  } finally {
    await context.close();
  }
});
