// The npm package in headless Chromium (Debian's), against the real IndexedDB.
// Needs pkg/ (scripts/build-pkg.sh) and the test bundles (make web-model).
import test from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { HERE, PKG, MODELS, FIXTURES, serve, listFixture, launch, openPage, cosine, BASE_ARGS, WEBGPU_ARGS } from './lib.mjs';

const CLASSES = Object.entries(await listFixture()).slice(0, 20);
/** Eight classes of three renderings each (other fonts than CLASSES' first). */
const ADAPT_CLASSES = CLASSES.slice(0, 8).map(([label, urls]) => [label, urls.slice(1, 4)]);
const ADAPT = { steps: 30, views: 2 };
const MODEL = '/models/default.bundle';
const OTHER = '/models/other.bundle';


async function reload(page) {
  await page.reload();
  await page.waitForFunction(() => window.ready === true);
}

/** Runs the whole suite on one backend; resolves to embeddings of a few fixture images. */
async function suite(t, context, origin, backend) {
  const g = `suite-${backend}`;
  const page = await openPage(context, origin, backend);
  const open = (extra = {}) =>
    page.evaluate(
      async ([g, model, backend, extra]) => {
        window.ann = await h.MetricAnn.open({ model, gallery: g, backend, ...extra });
        return window.ann.stats();
      },
      [g, MODEL, backend, extra],
    );
  const search = () => page.evaluate((classes) => h.searchAll(window.ann, classes), CLASSES);
  let first;

  await t.test(`[${backend}] enroll ${CLASSES.length} classes, each finds its own image at top-1`, async () => {
    assert.equal(CLASSES.length, 20, 'the fixture has at least 20 classes');
    const progress = await page.evaluate(async ([g, model, backend]) => {
      const seen = [];
      window.ann = await h.MetricAnn.open({ model, gallery: g, backend, onProgress: (p) => seen.push(p) });
      return seen;
    }, [g, MODEL, backend]);
    assert.ok(progress.length > 0 && progress.at(-1).loaded === progress.at(-1).total, 'download progress reported');
    const stats = await page.evaluate((classes) => h.enrollAll(window.ann, classes), CLASSES);
    console.log(`# backend=${stats.backend} (asked for ${backend}) classes=${stats.classes} vectors=${stats.vectors} lock=${stats.lock}${stats.backendFallback ? ` fallback: ${stats.backendFallback}` : ''}`);
    assert.equal(stats.backend, backend);
    assert.equal(stats.classes, 20);
    assert.equal(stats.persistent, true);
    first = await search();
    for (const r of first) {
      assert.equal(r.top, r.label, `class ${r.label}: top-1 was ${r.top}`);
      assert.ok(r.score > 0.999, `class ${r.label}: own image scores ${r.score}`);
      assert.equal(r.unknown, false);
    }
    assert.equal(first[0].metadata.first, CLASSES[0][1][0], 'metadata comes back with matches');
  });

  await t.test(`[${backend}] after a reload (new JS context) the reopened gallery gives the same results`, async () => {
    await reload(page);
    const stats = await open();
    assert.equal(stats.classes, 20);
    const again = await search();
    assert.deepEqual(again.map((r) => r.top), first.map((r) => r.top));
    for (let i = 0; i < again.length; i++) assert.ok(Math.abs(again[i].score - first[i].score) < 1e-5);
  });

  const removed = CLASSES[0][0];
  await t.test(`[${backend}] a removed class is gone after a reload`, async () => {
    await page.evaluate((label) => window.ann.remove(label), removed);
    await reload(page);
    await open();
    const labels = await page.evaluate(async () => (await window.ann.classes()).map((c) => c.label));
    assert.equal(labels.length, 19);
    assert.ok(!labels.includes(removed));
    const r = await search();
    assert.notEqual(r[0].top, removed);
    for (const x of r.slice(1)) assert.equal(x.top, x.label);
  });

  await t.test(`[${backend}] a second tab gets LOCKED for writes while the first holds the gallery`, async () => {
    const other = await openPage(context, origin, `${backend}-tab2`);
    const res = await other.evaluate(
      async ([g, model, backend, url]) => {
        const ann = await h.MetricAnn.open({ model, gallery: g, backend });
        const stats = await ann.stats();
        const write = await h.attempt(async () => ann.enroll('tab2', await h.input(url)));
        const search = await ann.search(await h.input(url));
        await ann.close();
        return { writable: stats.writable, lock: stats.lock, write, top: search.matches[0].label };
      },
      [g, MODEL, backend, CLASSES[1][1][0]],
    );
    await other.close();
    assert.equal(res.writable, false);
    assert.equal(res.lock, 'held-elsewhere');
    assert.equal(res.write.ok, false);
    assert.equal(res.write.error.code, 'LOCKED', JSON.stringify(res.write));
    assert.equal(res.top, CLASSES[1][0], 'a read-only tab still searches');
  });

  await t.test(`[${backend}] QUOTA_EXCEEDED: a write the browser refuses changes nothing`, async (tt) => {
    const cdp = await context.newCDPSession(page);
    const quota = 1024; // below what the origin already uses: every new write is refused
    await cdp.send('Storage.overrideQuotaForOrigin', { origin, quotaSize: quota });
    let res;
    try {
      // The override reaches the quota manager asynchronously; a new document sees it.
      await reload(page);
      await open();
      const seen = await page.evaluate(async (q) => {
        for (let i = 0; i < 100; i++) {
          const { quota } = await navigator.storage.estimate();
          if (quota <= q) return quota;
          await new Promise((ok) => setTimeout(ok, 100));
        }
        return (await navigator.storage.estimate()).quota;
      }, quota);
      if (seen > quota) {
        tt.skip(`QUOTA_EXCEEDED not tested: Storage.overrideQuotaForOrigin did not take effect (estimate says ${seen})`);
        return;
      }
      res = await page.evaluate(async () => {
        const before = (await window.ann.classes()).length;
        // 1024×1024 of noise, kept as PNG (~3 MB).
        const noise = new ImageData(1024, 1024);
        for (let i = 0; i < noise.data.length; i += 65536) crypto.getRandomValues(noise.data.subarray(i, i + 65536));
        const err = await h.attempt(() => window.ann.enroll('too-big', noise, { keepImages: true }));
        const after = (await window.ann.classes()).length;
        if (err.ok) await window.ann.remove('too-big'); // keep the suite's state whatever happened
        const small = await h.attempt(() => window.ann.search(noise));
        return { before, after, err, searchOk: small.ok };
      });
    } finally {
      await cdp.send('Storage.overrideQuotaForOrigin', { origin });
    }
    console.log(`# quota: ${JSON.stringify(res.err.error ?? res.err)}`);
    assert.equal(res.err.ok, false);
    assert.equal(res.err.error.code, 'QUOTA_EXCEEDED', JSON.stringify(res.err));
    assert.equal(res.after, res.before, 'the refused class is not in the gallery');
    assert.ok(res.searchOk, 'the gallery still works');
  });

  await t.test(`[${backend}] errors carry codes: BAD_IMAGE, BAD_INPUT, NOT_FOUND, ALREADY_EXISTS`, async () => {
    const errs = await page.evaluate(async (labels) => ({
      text: await h.attempt(() => window.ann.enroll('x', new TextEncoder().encode('not an image'))),
      empty: await h.attempt(() => window.ann.search(new Uint8Array(0))),
      kind: await h.attempt(() => window.ann.search({ hello: 1 })),
      k: await h.attempt(async () => window.ann.searchVector(new Float32Array(4), { k: 0 })),
      missing: await h.attempt(() => window.ann.remove('no such class')),
      taken: await h.attempt(() => window.ann.rename(labels[0], labels[1])),
      classes: (await window.ann.classes()).length,
    }), [CLASSES[1][0], CLASSES[2][0]]);
    assert.equal(errs.text.error.code, 'BAD_IMAGE');
    assert.match(errs.text.error.message, /class "x"/);
    assert.equal(errs.text.error.name, 'MetricAnnError');
    assert.equal(errs.empty.error.code, 'BAD_IMAGE');
    assert.match(errs.empty.error.message, /empty/);
    assert.equal(errs.kind.error.code, 'BAD_IMAGE');
    assert.match(errs.kind.error.message, /unsupported input Object/);
    assert.equal(errs.k.error.code, 'BAD_INPUT');
    assert.equal(errs.missing.error.code, 'NOT_FOUND');
    assert.equal(errs.taken.error.code, 'ALREADY_EXISTS');
    assert.equal(errs.classes, 19, 'failed calls changed nothing');
  });

  await t.test(`[${backend}] export → import into another gallery gives the same results`, async () => {
    const res = await page.evaluate(
      async ([model, backend, g, urls]) => {
        const blob = await window.ann.export();
        const copy = await h.MetricAnn.import(blob, { model, backend, gallery: `${g}-copy` });
        const stats = await copy.stats();
        const top = (await copy.search(await h.input(urls[0]))).matches[0].label;
        const busy = await h.attempt(() => h.MetricAnn.import(blob, { model, backend, gallery: `${g}-copy`, overwrite: true }));
        await copy.close();
        const again = await h.attempt(() => h.MetricAnn.import(blob, { model, backend, gallery: `${g}-copy` }));
        const replaced = await h.MetricAnn.import(blob, { model, backend, gallery: `${g}-copy`, overwrite: true });
        const replacedClasses = (await replaced.stats()).classes;
        await replaced.close();
        return { isBlob: blob instanceof Blob, size: blob.size, classes: stats.classes, top, busy, again, replacedClasses };
      },
      [MODEL, backend, g, CLASSES[1][1]],
    );
    assert.ok(res.isBlob && res.size > 0);
    assert.equal(res.classes, 19);
    assert.equal(res.top, CLASSES[1][0]);
    assert.equal(res.busy.error.code, 'LOCKED', 'the copy is open for writing in this page');
    assert.equal(res.again.error.code, 'ALREADY_EXISTS');
    assert.equal(res.replacedClasses, 19);
  });

  let damaged;
  await t.test(`[${backend}] a damaged class page: open fails with CORRUPT naming it; skipDamaged keeps the other pages' classes searchable`, async () => {
    await page.evaluate(() => window.ann.close());
    damaged = await page.evaluate((g) => h.damage(g, 'classes-'), g);
    await reload(page);
    const strict = await page.evaluate(
      ([g, model, backend]) => h.attempt(() => h.MetricAnn.open({ model, gallery: g, backend })),
      [g, MODEL, backend],
    );
    assert.equal(strict.ok, false);
    assert.equal(strict.error.code, 'CORRUPT');
    assert.equal(strict.error.blob, damaged.key);
    assert.ok(strict.error.message.includes(damaged.key), strict.error.message);
    console.log(`# damaged ${damaged.key}: ${strict.error.message}`);
    const stats = await open({ skipDamaged: true });
    assert.deepEqual(stats.damaged.map((d) => d.blob), [damaged.key]);
    // Class records are stored in pages of several classes: those of the
    // damaged page are lost, every other class is still found.
    const lostCount = 19 - stats.classes;
    assert.ok(lostCount >= 1 && lostCount < 19, `the damaged page held ${lostCount} of 19 classes`);
    const r = await search();
    const lost = r.filter((x) => x.label !== removed && x.top !== x.label);
    assert.equal(lost.length, lostCount, `exactly the damaged page's classes are lost: ${JSON.stringify(lost)}`);
    console.log(`# the damaged page held ${lostCount} classes`);
    await page.evaluate(() => window.ann.close());
  });

  await t.test(`[${backend}] a bundle with another fingerprint is refused with MODEL_MISMATCH; reembed rebuilds from kept images`, async () => {
    const res = await page.evaluate(
      async ([g, model, other, backend, classes]) => {
        const name = `${g}-mismatch`;
        const a = await h.MetricAnn.open({ model, gallery: name, backend });
        for (const [label, urls] of classes) await a.enroll(label, await h.input(urls[0]), { keepImages: true });
        await a.close();
        const refused = await h.attempt(() => h.MetricAnn.open({ model: other, gallery: name, backend }));
        const stale = await h.MetricAnn.open({ model: other, gallery: name, backend, allowModelMismatch: true });
        const staleStats = await stale.stats();
        const staleSearch = await h.attempt(async () => stale.search(await h.input(classes[0][1][0])));
        const rebuilt = await stale.reembed();
        const tops = [];
        for (const [, urls] of classes) tops.push((await stale.search(await h.input(urls[0]))).matches[0].label);
        const after = await stale.stats();
        await stale.close();
        const reopened = await h.attempt(async () => {
          const b = await h.MetricAnn.open({ model: other, gallery: name, backend });
          await b.close();
          return true;
        });
        return { refused, stale: staleStats.stale, staleSearch, rebuilt, tops, fp: after.fingerprint, modelFp: after.modelFingerprint, reopened };
      },
      [g, MODEL, OTHER, backend, CLASSES.slice(0, 3)],
    );
    assert.equal(res.refused.error.code, 'MODEL_MISMATCH', JSON.stringify(res.refused));
    assert.match(res.refused.error.message, /gallery/);
    assert.equal(res.stale, true);
    assert.equal(res.staleSearch.error.code, 'MODEL_MISMATCH');
    assert.equal(res.rebuilt.classes, 3);
    assert.deepEqual(res.tops, CLASSES.slice(0, 3).map(([c]) => c));
    assert.equal(res.fp, res.modelFp);
    assert.equal(res.reopened.ok, true);
  });

  await t.test(`[${backend}] adapt(): progress, abort, the held-out check; the adapted head is stored, survives a reload and an export; resetAdaptation() goes back`, async () => {
    const ag = `adapt-${backend}`;
    const run = await page.evaluate(
      async ([ag, model, backend, classes, settings]) => {
        const ann = await h.MetricAnn.open({ model, gallery: ag, backend });
        for (const [label, urls] of classes) {
          const images = [];
          for (const u of urls) images.push(await h.input(u));
          await ann.enroll(label, images, { keepImages: true });
        }
        const before = await ann.stats();
        const controller = new AbortController();
        const aborted = await h.attempt(() =>
          ann.adapt({ ...settings, signal: controller.signal, onProgress: () => controller.abort() }),
        );
        const afterAbort = await ann.stats();
        const progress = [];
        const result = await ann.adapt({ ...settings, onProgress: (p) => progress.push(p) });
        const stats = await ann.stats();
        const tops = [];
        for (const [, urls] of classes) tops.push((await ann.search(await h.input(urls[0]))).matches[0].label);
        const query = Array.from(await ann.embed(await h.input(classes[0][1][0])));
        await ann.close();
        return { before, aborted, afterAbort, progress, result, stats, tops, query };
      },
      [ag, MODEL, backend, ADAPT_CLASSES, ADAPT],
    );
    const { before, result, stats } = run;
    console.log(`# [${backend}] adapt: ${JSON.stringify(result)}`);
    assert.equal(run.aborted.ok, false);
    assert.equal(run.aborted.error.name, 'AbortError', JSON.stringify(run.aborted));
    assert.equal(run.afterAbort.fingerprint, before.fingerprint, 'an aborted adaptation changes nothing');
    assert.equal(run.afterAbort.adapted, false);
    assert.deepEqual(run.progress[0], { phase: 'features', done: run.progress[0].done, total: run.progress[0].total });
    assert.deepEqual(run.progress.at(-1), { phase: 'training', step: 30, steps: 30, loss: run.progress.at(-1).loss });
    assert.equal(run.progress.filter((p) => p.phase === 'features').at(-1).done, 8 * (1 + 2 * (1 + 2)), 'held-out images, then each training image and its 2 views');
    assert.equal(result.steps, 30);
    assert.equal(result.classes, 8);
    assert.equal(result.images, 16, 'one image per class held out');
    assert.deepEqual([result.heldOut.images, result.heldOut.views], [8, false]);
    assert.equal(result.kept, result.heldOut.top1After >= result.heldOut.top1Before);
    assert.equal(result.adapted, result.kept);
    assert.ok(result.adapted, 'this gallery adapts (a fixed seed: the same head every run)');
    assert.equal(stats.adapted, true);
    assert.equal(stats.stale, false);
    assert.notEqual(stats.fingerprint, before.fingerprint, 'the adapted model has a fingerprint of its own');
    assert.equal(stats.fingerprint, stats.modelFingerprint);
    assert.equal(result.fingerprint, stats.fingerprint);
    assert.equal(stats.classes, 8);
    assert.equal(stats.vectors, 24, 'every kept image re-embedded, the held-out ones too');
    assert.deepEqual(run.tops, ADAPT_CLASSES.map(([label]) => label));

    await reload(page);
    const again = await page.evaluate(
      async ([ag, model, backend, classes]) => {
        const storedAdapted = await h.storedKinds(ag);
        const ann = await h.MetricAnn.open({ model, gallery: ag, backend });
        const stats = await ann.stats();
        const query = Array.from(await ann.embed(await h.input(classes[0][1][0])));
        const copy = await h.MetricAnn.import(await ann.export(), { model, backend });
        const copied = await copy.stats();
        const copyTop = (await copy.search(await h.input(classes[1][1][0]))).matches[0].label;
        await copy.close();
        const reset = await ann.resetAdaptation();
        const plain = await ann.stats();
        const resetAgain = await ann.resetAdaptation();
        const top = (await ann.search(await h.input(classes[2][1][0]))).matches[0].label;
        await ann.close();
        const reopened = await h.MetricAnn.open({ model, gallery: ag, backend });
        const reopenedStats = await reopened.stats();
        await reopened.close();
        const storedPlain = await h.storedKinds(ag);
        await h.MetricAnn.deleteGallery(ag);
        return { storedAdapted, stats, query, copied, copyTop, reset, plain, resetAgain, top, reopenedStats, storedPlain };
      },
      [ag, MODEL, backend, ADAPT_CLASSES],
    );
    assert.ok('head' in again.storedAdapted, `the head is a record of the gallery: ${Object.keys(again.storedAdapted)}`);
    assert.ok(!('head' in again.storedPlain), 'resetAdaptation() deletes it');
    assert.equal(again.stats.adapted, true, 'the head is read back with the gallery');
    assert.equal(again.stats.fingerprint, stats.fingerprint);
    assert.equal(again.stats.stale, false);
    assert.ok(cosine(again.query, run.query) > 0.9999, 'queries embed as before the reload');
    assert.equal(again.copied.adapted, true, 'an export carries the head');
    assert.equal(again.copied.fingerprint, stats.fingerprint);
    assert.equal(again.copyTop, ADAPT_CLASSES[1][0]);
    assert.equal(again.reset, true);
    assert.equal(again.plain.adapted, false);
    assert.equal(again.plain.fingerprint, before.fingerprint, 'back to the shipped model');
    assert.equal(again.plain.vectors, 24);
    assert.equal(again.resetAgain, false);
    assert.equal(again.top, ADAPT_CLASSES[2][0]);
    assert.equal(again.reopenedStats.adapted, false);
  });

  await t.test(`[${backend}] adapt() with one image per class checks on augmented views; a gallery without kept images is refused`, async () => {
    const res = await page.evaluate(
      async ([model, backend, classes, settings]) => {
        const ann = await h.MetricAnn.open({ model, backend });
        for (const [label, urls] of classes) await ann.enroll(label, await h.input(urls[0]), { keepImages: true });
        const result = await ann.adapt(settings);
        const stats = await ann.stats();
        const bare = await h.MetricAnn.open({ model, backend });
        for (const [label, urls] of classes.slice(0, 2)) await bare.enroll(label, await h.input(urls[0]));
        const refused = await h.attempt(() => bare.adapt(settings));
        const one = await h.MetricAnn.open({ model, backend });
        await one.enroll(classes[0][0], await h.input(classes[0][1][0]), { keepImages: true });
        const tooFew = await h.attempt(() => one.adapt(settings));
        const badSteps = await h.attempt(() => one.adapt({ steps: 0 }));
        for (const a of [ann, bare, one]) await a.close();
        return { result, stats, refused, tooFew, badSteps };
      },
      [MODEL, backend, ADAPT_CLASSES.slice(0, 4), ADAPT],
    );
    const held = res.result.heldOut;
    assert.deepEqual([held.images, held.views], [4, true]);
    assert.equal(res.result.kept, held.top1After > held.top1Before, 'a views-only check must improve');
    assert.equal(res.stats.adapted, res.result.kept);
    assert.equal(res.refused.error.code, 'BAD_INPUT');
    assert.match(res.refused.error.message, /keepImages/);
    assert.equal(res.tooFew.error.code, 'BAD_INPUT');
    assert.equal(res.badSteps.error.code, 'BAD_INPUT');
  });

  await t.test(`[${backend}] optimize() then quantize('int8-residual') and quantize(): one int8 graph in IndexedDB, smaller in memory, still found after a reload`, async () => {
    const qg = `quant-${backend}`;
    const N = 1300; // past the growing segment's 1,024: one sealed graph
    const before = await page.evaluate(
      async ([qg, model, backend, N]) => {
        const ann = await h.MetricAnn.open({ model, gallery: qg, backend });
        const { dim } = await ann.stats();
        let s = 12345;
        const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
        window.vectors = Array.from({ length: N }, () => Array.from({ length: dim }, rand));
        for (let i = 0; i < N; i += 500) {
          await ann.enrollVectors(window.vectors.slice(i, i + 500).map((v, j) => ({ label: `q${i + j}`, vectors: [v] })));
        }
        while (await ann.maintain()) {}
        // A few more: the growing segment beside the sealed graph.
        await ann.enrollVectors(Array.from({ length: 20 }, (_, j) => ({ label: `x${j}`, vectors: [Array.from({ length: dim }, rand)] })));
        const maintained = await ann.stats();
        const float = await ann.optimize();
        const again = await ann.optimize();
        const failed = (p) => p.then(() => 'resolved', (e) => String(e.message ?? e));
        const unknown = await failed(ann.quantize('int4'));
        const fine = await ann.quantize('int8-residual');
        const quant = await ann.quantize();
        const noWayBack = await failed(ann.quantize('int8-residual'));
        const tops = [];
        for (let i = 0; i < N; i += 97) tops.push((await ann.searchVector(window.vectors[i], { k: 1 })).matches[0].label);
        await ann.close();
        return { maintained, float, again, unknown, fine, quant, noWayBack, tops };
      },
      [qg, MODEL, backend, N],
    );
    const kinds = (st) => st.segments.map((x) => x.kind);
    // A sealed graph and the growing segment, then one graph of every vector.
    assert.ok(before.maintained.segments.length >= 2, JSON.stringify(kinds(before.maintained)));
    assert.deepEqual(kinds(before.float), ['hnsw']);
    assert.equal(before.float.vectors, N + 20);
    assert.deepEqual(before.again, before.float);
    assert.equal(before.float.quantization, 'none');
    assert.match(before.unknown, /int4/);
    // Codes plus residual codes: between float's memory and int8's.
    assert.equal(before.fine.quantization, 'int8-residual');
    assert.deepEqual(kinds(before.fine), ['hnsw-int8']);
    assert.ok(before.fine.memoryBytes < before.float.memoryBytes * 0.8, `${before.fine.memoryBytes} vs ${before.float.memoryBytes}`);
    assert.ok(before.fine.memoryBytes > before.quant.memoryBytes, `${before.fine.memoryBytes} vs ${before.quant.memoryBytes}`);
    assert.match(before.noWayBack, /cannot become int8-residual/);
    assert.equal(before.quant.quantization, 'int8');
    assert.deepEqual(kinds(before.quant), ['hnsw-int8']);
    assert.ok(before.quant.memoryBytes < before.float.memoryBytes * 0.8, `${before.quant.memoryBytes} vs ${before.float.memoryBytes}`);
    assert.ok(before.quant.bytes < before.float.bytes);
    const wanted = before.tops.map((_, i) => `q${i * 97}`);
    assert.deepEqual(before.tops, wanted);
    await reload(page);
    const after = await page.evaluate(
      async ([qg, model, backend, N]) => {
        const ann = await h.MetricAnn.open({ model, gallery: qg, backend });
        const stats = await ann.stats();
        let s = 12345;
        const rand = () => ((s = (s * 1103515245 + 12345) % 2147483648) / 2147483648) - 0.5;
        const vectors = Array.from({ length: N }, () => Array.from({ length: stats.dim }, rand));
        const tops = [];
        for (let i = 0; i < N; i += 97) tops.push((await ann.searchVector(vectors[i], { k: 1 })).matches[0].label);
        await ann.close();
        return { stats, tops, stored: await h.storedKinds(qg) };
      },
      [qg, MODEL, backend, N],
    );
    assert.equal(after.stats.quantization, 'int8');
    assert.deepEqual(kinds(after.stats), kinds(before.quant));
    assert.equal(after.stats.memoryBytes, before.quant.memoryBytes);
    assert.deepEqual(after.tops, wanted);
    // The graph (over 64 KiB) is stored as a Blob, the manifest as bytes.
    const segments = Object.keys(after.stored).filter((k) => k.startsWith('seg-'));
    assert.equal(segments.length, 1, JSON.stringify(after.stored));
    assert.equal(after.stored[segments[0]], 'Blob', JSON.stringify(after.stored));
    assert.equal(after.stored.manifest, 'bytes', JSON.stringify(after.stored));
    // A damaged Blob is found by its checksum and named, like any other record.
    const broken = await page.evaluate(
      async ([qg, model, backend]) => {
        const damaged = await h.damage(qg, 'seg-');
        const strict = await h.attempt(() => h.MetricAnn.open({ model, gallery: qg, backend }));
        await h.MetricAnn.deleteGallery(qg);
        return { damaged, strict };
      },
      [qg, MODEL, backend],
    );
    assert.equal(broken.damaged.stored, 'Blob');
    assert.equal(broken.strict.ok, false);
    assert.equal(broken.strict.error.code, 'CORRUPT');
    assert.equal(broken.strict.error.blob, broken.damaged.key);
  });

  await t.test(`[${backend}] createWorker(): the same API in a Web Worker`, async () => {
    const res = await page.evaluate(
      async ([model, backend, classes]) => {
        const remote = h.createWorker();
        const ann = await remote.open({ model, backend, gallery: 'worker-gallery' });
        for (const [i, [label, urls]] of classes.entries()) await ann.enroll(label, await h.input(urls[0], i ? 'img' : 'canvas'));
        const top = (await ann.search(await h.input(classes[1][1][0], 'img'))).matches[0].label;
        const err = await h.attempt(() => ann.remove('nope'));
        for (const [label, urls] of classes) await ann.enroll(`${label}-kept`, [await h.input(urls[1]), await h.input(urls[2])], { keepImages: true });
        await ann.remove(classes[0][0]);
        await ann.remove(classes[1][0]);
        await ann.remove(classes[2][0]);
        const controller = new AbortController();
        const pending = ann.adapt({ steps: 10, views: 1, signal: controller.signal });
        controller.abort();
        const aborted = await h.attempt(() => pending);
        const progress = [];
        const adapted = await ann.adapt({ steps: 10, views: 1, onProgress: (p) => progress.push(p.phase) });
        const stats = await ann.stats();
        const reset = await ann.resetAdaptation();
        await ann.close();
        remote.terminate();
        return { top, err, backend: stats.backend, aborted, adapted, progress, adaptedStats: stats.adapted, reset };
      },
      [MODEL, backend, CLASSES.slice(0, 3)],
    );
    assert.equal(res.top, CLASSES[1][0]);
    assert.equal(res.err.error.code, 'NOT_FOUND');
    assert.equal(res.backend, backend);
    assert.equal(res.aborted.error.name, 'AbortError', JSON.stringify(res.aborted));
    assert.equal(res.adapted.steps, 10);
    assert.ok(res.progress.includes('features') && res.progress.at(-1) === 'training', res.progress.join());
    assert.equal(res.adaptedStats, res.adapted.adapted);
    assert.equal(res.reset, res.adapted.adapted);
  });

  const embeddings = await page.evaluate(
    async ([model, backend, urls]) => {
      const ann = await h.MetricAnn.open({ model, backend });
      const out = [];
      for (const u of urls) out.push(Array.from(await ann.embed(await h.input(u))));
      await ann.close();
      return out;
    },
    [MODEL, backend, CLASSES.slice(0, 5).map(([, urls]) => urls[0])],
  );
  await page.close();
  return embeddings;
}

test('metricann in headless Chromium', async (t) => {
  const server = await serve({ '/pkg/': PKG, '/models/': MODELS, '/fixtures/': FIXTURES, '/': join(HERE, 'pages') });
  t.after(() => server.close());

  const cpuContext = await launch(BASE_ARGS);
  let cpu;
  try {
    await t.test('backend "auto" without a GPU falls back to the CPU', async () => {
      const page = await openPage(cpuContext, server.origin, 'auto');
      const stats = await page.evaluate(async (model) => {
        const ann = await h.MetricAnn.open({ model });
        const s = await ann.stats();
        await ann.close();
        return s;
      }, MODEL);
      console.log(`# auto picked ${stats.backend}${stats.backendFallback ? ` (${stats.backendFallback})` : ''}`);
      assert.equal(stats.backend, 'cpu');
      assert.equal(typeof stats.backendFallback, 'string', 'the fallback says why WebGPU was not used');
      assert.ok(stats.backendFallback.length > 0);
      assert.equal(stats.persistent, false);
      await page.close();
    });
    cpu = await suite(t, cpuContext, server.origin, 'cpu');
  } finally {
    await cpuContext.close();
  }

  // WebGPU: does headless Chromium expose an adapter here (SwiftShader / lavapipe)?
  const gpuContext = await launch(WEBGPU_ARGS);
  try {
    const page = await openPage(gpuContext, server.origin, 'gpu-probe');
    const info = await page.evaluate(() => h.gpuInfo());
    await page.close();
    console.log(`# WebGPU in headless Chromium (${WEBGPU_ARGS.filter((a) => /webgpu|vulkan|angle/i.test(a)).join(' ')}): ${JSON.stringify(info)}`);
    if (!info.available) {
      t.diagnostic(`WebGPU not exposed by headless Chromium here: ${info.reason}; the browser suite ran on the CPU backend only`);
      return;
    }
    await t.test('backend "auto" passes over a software WebGPU adapter (SwiftShader) for the CPU', async () => {
      const page = await openPage(gpuContext, server.origin, 'auto');
      const stats = await page.evaluate(async (model) => {
        const ann = await h.MetricAnn.open({ model });
        const s = await ann.stats();
        await ann.close();
        return s;
      }, MODEL);
      console.log(`# auto under SwiftShader picked ${stats.backend} (${stats.backendFallback})`);
      assert.equal(stats.backend, 'cpu');
      assert.match(stats.backendFallback, /software renderer/);
      await page.close();
    });
    const gpu = await suite(t, gpuContext, server.origin, 'webgpu');
    await t.test('WebGPU and CPU embeddings agree (cosine ≥ 0.999)', () => {
      for (let i = 0; i < cpu.length; i++) {
        const c = cosine(cpu[i], gpu[i]);
        console.log(`# image ${i}: cosine(cpu, webgpu) = ${c.toFixed(6)}`);
        assert.ok(c >= 0.999, `image ${i}: cosine ${c}`);
      }
    });
  } finally {
    await gpuContext.close();
  }
});
