// The packed npm package in Node.js: CPU backend, in-memory gallery, export/import.
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { MODELS, FIXTURES, ROOT, listFixture } from './lib.mjs';
import { pack, project } from './pack.mjs';

const SCRIPT = `
import { MetricAnn, ERROR_CODES } from 'metricann';
import { readFile } from 'node:fs/promises';
const [model, other, ...images] = process.argv.slice(2);
const pairs = [];
const seconds = [];
for (let i = 0; i < images.length; i += 3) {
  pairs.push([images[i], images[i + 1]]);
  seconds.push(images[i + 2]);
}
const out = { codes: ERROR_CODES };
const ann = await MetricAnn.open({ model, backend: 'auto' });
for (const [label, file] of pairs) await ann.enroll(label, await readFile(file), { metadata: { file } });
out.stats = await ann.stats();
out.tops = [];
for (const [label, file] of pairs) {
  const r = await ann.search(new Uint8Array(await readFile(file)), { k: 2 });
  out.tops.push([label, r.matches[0].label, r.matches[0].score]);
}
const exported = await ann.export({ format: 'bytes' });
const blob = await ann.export();
out.exported = { bytes: exported.length, blobIsBlob: blob instanceof Blob };
await ann.close();
const copy = await MetricAnn.import(blob, { model });
out.copyClasses = (await copy.classes()).length;
out.copyTop = (await copy.search(await readFile(pairs[1][1]))).matches[0].label;
const idb = await MetricAnn.open({ model, gallery: 'x' }).catch((e) => ({ code: e.code, message: e.message }));
out.idb = idb;
const mismatch = await MetricAnn.import(exported, { model: other }).catch((e) => ({ code: e.code, message: e.message }));
out.mismatch = mismatch;
const missing = await MetricAnn.open({ model: '/no/such/model.bundle' }).catch((e) => ({ code: e.code, message: e.message }));
out.missing = missing;
const bad = await copy.search(new Uint8Array([1, 2, 3])).catch((e) => ({ code: e.code, message: e.message }));
out.bad = bad;
out.unkept = await copy.adapt().catch((e) => ({ code: e.code, message: e.message }));
// Adapting in Node: two kept images a class, an in-memory gallery.
const kept = await MetricAnn.open({ model });
for (const [i, [label, file]] of pairs.entries()) {
  await kept.enroll(label, [await readFile(file), await readFile(seconds[i])], { keepImages: true });
}
const phases = new Set();
out.adapt = await kept.adapt({ steps: 20, views: 1, onProgress: (p) => phases.add(p.phase) });
out.adaptPhases = [...phases];
out.adaptStats = await kept.stats();
out.adaptTop = (await kept.search(await readFile(pairs[2][1]))).matches[0].label;
const adaptedCopy = await MetricAnn.import(await kept.export({ format: 'bytes' }), { model });
out.adaptedCopy = await adaptedCopy.stats();
const aborter = new AbortController();
aborter.abort();
out.aborted = await kept.adapt({ signal: aborter.signal }).catch((e) => ({ name: e.name }));
console.log(JSON.stringify(out));
`;

test('the packed package installs and runs in Node.js', async () => {
  const { tarball, files, size } = await pack();
  console.log(`# npm pack: ${tarball} (${size} bytes): ${files.join(', ')}`);
  for (const f of ['package.json', 'index.js', 'index.d.ts', 'node.js', 'worker.js', 'workerd.js', 'metricann.js', 'metricann_bg.wasm', 'README.md']) {
    assert.ok(files.includes(f), `${f} is in the tarball`);
  }
  const dir = await project(tarball, { 'check.mjs': SCRIPT });
  const classes = Object.entries(await listFixture()).slice(0, 5);
  const file = (url) => join(FIXTURES, decodeURIComponent(url.replace('/fixtures/', '')));
  const args = classes.flatMap(([label, urls]) => [label, file(urls[0]), file(urls[1])]);
  const stdout = execFileSync(process.execPath, ['check.mjs', join(MODELS, 'default.bundle'), join(MODELS, 'other.bundle'), ...args], {
    cwd: dir,
    encoding: 'utf8',
  });
  const out = JSON.parse(stdout.trim().split('\n').at(-1));
  console.log(`# node: backend=${out.stats.backend} classes=${out.stats.classes} export=${out.exported.bytes} bytes`);
  assert.equal(out.stats.backend, 'cpu');
  assert.equal(out.stats.persistent, false);
  assert.equal(out.stats.classes, 5);
  for (const [label, top, score] of out.tops) {
    assert.equal(top, label);
    assert.ok(score > 0.999);
  }
  assert.ok(out.exported.bytes > 0 && out.exported.blobIsBlob);
  assert.equal(out.copyClasses, 5);
  assert.equal(out.copyTop, classes[1][0]);
  assert.equal(out.idb.code, 'BAD_INPUT');
  assert.match(out.idb.message, /IndexedDB/);
  assert.equal(out.mismatch.code, 'MODEL_MISMATCH');
  assert.equal(out.missing.code, 'NOT_FOUND');
  assert.equal(out.bad.code, 'BAD_IMAGE');
  assert.ok(out.codes.includes('QUOTA_EXCEEDED'));
  console.log(`# node adapt: ${JSON.stringify(out.adapt)}`);
  assert.equal(out.unkept.code, 'BAD_INPUT', 'adapting needs kept images');
  assert.deepEqual(out.adaptPhases, ['features', 'training']);
  assert.deepEqual([out.adapt.steps, out.adapt.classes, out.adapt.heldOut.images], [20, 5, 5]);
  assert.equal(out.adapt.kept, out.adapt.heldOut.top1After >= out.adapt.heldOut.top1Before);
  assert.equal(out.adaptStats.adapted, out.adapt.adapted);
  assert.equal(out.adaptStats.fingerprint, out.adaptStats.modelFingerprint);
  assert.equal(out.adaptTop, classes[2][0]);
  assert.equal(out.adaptedCopy.adapted, out.adapt.adapted, 'the export carries the head');
  assert.equal(out.adaptedCopy.fingerprint, out.adaptStats.fingerprint);
  assert.equal(out.aborted.name, 'AbortError');
});

const SHIPPED = `
import { MetricAnn, MODELS } from 'metricann';
import { readFile } from 'node:fs/promises';
const [dir] = process.argv.slice(2);
const photo = (name) => readFile(dir + '/' + name + '.png');
const ann = await MetricAnn.open({ model: 'objects' });
for (const [label, name] of [['cat', 'chelsea'], ['coffee', 'coffee'], ['astronaut', 'astronaut']]) {
  await ann.enroll(label, await photo(name));
}
const stats = await ann.stats();
const known = await ann.search(await photo('coffee'));
const never = await ann.search(await photo('rocket'));
const forced = await ann.search(await photo('rocket'), { threshold: -1 });
const glyphs = await MetricAnn.open({ model: 'glyphs' });
console.log(JSON.stringify({ models: Object.keys(MODELS), stats, known, never, forced, glyphs: await glyphs.stats() }));
`;

test('the models the package ships open by name, and search uses the model\'s calibrated threshold', async () => {
  const { tarball, files } = await pack();
  for (const f of ['models/objects.bundle', 'models/glyphs.bundle']) assert.ok(files.includes(f), `${f} is in the tarball`);
  const dir = await project(tarball, { 'shipped.mjs': SHIPPED });
  const stdout = execFileSync(process.execPath, ['shipped.mjs', join(ROOT, 'tests/fixtures/imagenet')], { cwd: dir, encoding: 'utf8' });
  const out = JSON.parse(stdout.trim().split('\n').at(-1));
  console.log(`# shipped objects model: threshold ${out.stats.threshold}; rocket's best ${out.never.matches[0].label} at ${out.never.matches[0].score.toFixed(3)}`);
  assert.deepEqual(out.models, ['objects', 'glyphs']);
  assert.equal(out.stats.dim, 128);
  assert.ok(out.stats.threshold > 0 && out.stats.threshold < 1, `calibrated threshold ${out.stats.threshold}`);
  assert.equal(out.known.matches[0].label, 'coffee');
  assert.equal(out.known.unknown, false);
  assert.equal(out.never.unknown, true, 'a never-enrolled photo is unknown under the calibrated threshold');
  assert.equal(out.forced.unknown, false, 'threshold -1 turns it off');
  assert.equal(out.glyphs.threshold, null, 'the glyph model carries no calibration');
  assert.notEqual(out.glyphs.modelFingerprint, out.stats.modelFingerprint);
});
