// A gallery passes between the Python package and the npm package, both ways,
// through the export file: Python enrolls and exports, Node imports, searches,
// enrolls one class more and exports; Python imports that and finds all classes.
// Needs the Python test venv (`make test-python` makes it; METRICANN_PYTHON picks
// another interpreter with `metricann` installed).
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { MODELS, FIXTURES, ROOT, listFixture } from './lib.mjs';
import { pack, project } from './pack.mjs';

const PYTHON = process.env.METRICANN_PYTHON ?? join(ROOT, '.py/test/bin/python');

const PY_WRITE = `
import json, sys, metricann
model_path, folder, out, *pairs = sys.argv[1:]
model = metricann.Model.open(model_path)
gallery = metricann.Gallery.create(folder, model)
for label, image in zip(pairs[::2], pairs[1::2]):
    gallery.enroll(label, [image], {"from": "python"})
size = gallery.export(out)
print(json.dumps({"bytes": size, "fingerprint": gallery.fingerprint, "classes": sorted(c["label"] for c in gallery.classes())}))
`;

const PY_READ = `
import json, sys, metricann
model_path, export, folder, *images = sys.argv[1:]
model = metricann.Model.open(model_path)
gallery = metricann.Gallery.import_file(export, folder, model)
results = gallery.search(images, k=1, threshold=-1.0)
print(json.dumps({"classes": sorted(c["label"] for c in gallery.classes()), "tops": [r.matches[0].label for r in results],
                  "metadata": [r.matches[0].metadata for r in results]}))
`;

const NODE = `
import { MetricAnn } from 'metricann';
import { readFile, writeFile } from 'node:fs/promises';
const [model, fromPython, out, extraLabel, extraImage, ...queries] = process.argv.slice(2);
const ann = await MetricAnn.import(await readFile(fromPython), { model });
const result = { classes: (await ann.classes()).map((c) => c.label).sort(), tops: [], metadata: [] };
for (const q of queries) {
  const top = (await ann.search(await readFile(q), { k: 1, threshold: -1 })).matches[0];
  result.tops.push(top.label);
  result.metadata.push(top.metadata);
}
await ann.enroll(extraLabel, await readFile(extraImage), { metadata: { from: 'node' } });
await writeFile(out, await ann.export({ format: 'bytes' }));
console.log(JSON.stringify(result));
`;

function pythonWithPackage() {
  if (!existsSync(PYTHON)) return `no interpreter at ${PYTHON}`;
  const probe = spawnSync(PYTHON, ['-c', 'import metricann'], { encoding: 'utf8' });
  return probe.status === 0 ? null : `${PYTHON} cannot import metricann: ${probe.stderr.trim().split('\n').at(-1)}`;
}

const json = (stdout) => JSON.parse(stdout.trim().split('\n').at(-1));

test('a gallery passes from Python to the npm package and back', async (t) => {
  const missing = pythonWithPackage();
  if (missing) {
    if (process.env.METRICANN_REQUIRE_PYTHON) assert.fail(`the Python package is required: ${missing}`);
    t.skip(`skipped: ${missing} (run make test-python first)`);
    return;
  }
  const model = join(MODELS, 'default.bundle');
  const file = (url) => join(FIXTURES, decodeURIComponent(url.replace('/fixtures/', '')));
  const classes = Object.entries(await listFixture()).slice(0, 5);
  const [extra, ...enrolled] = classes;
  const work = await mkdtemp(join(tmpdir(), 'metricann-python-npm-'));

  const pairs = enrolled.flatMap(([label, urls]) => [label, file(urls[0])]);
  const written = json(execFileSync(PYTHON, ['-c', PY_WRITE, model, join(work, 'py'), join(work, 'py.export'), ...pairs], { encoding: 'utf8' }));
  assert.deepEqual(written.classes, enrolled.map(([label]) => label).sort());
  assert.ok(written.bytes > 0);

  const { tarball } = await pack();
  const dir = await project(tarball, { 'roundtrip.mjs': NODE });
  const queries = enrolled.map(([, urls]) => file(urls[1] ?? urls[0]));
  const fromNode = join(work, 'node.export');
  const read = json(
    execFileSync(process.execPath, ['roundtrip.mjs', model, join(work, 'py.export'), fromNode, extra[0], file(extra[1][0]), ...queries], {
      cwd: dir,
      encoding: 'utf8',
    }),
  );
  console.log(`# python → npm: ${written.bytes} bytes, ${read.classes.length} classes, tops ${read.tops.join(' ')}`);
  assert.deepEqual(read.classes, written.classes);
  assert.deepEqual(read.metadata, enrolled.map(() => ({ from: 'python' })));
  const right = read.tops.filter((top, i) => top === enrolled[i][0]).length;
  assert.ok(right >= enrolled.length - 1, `the npm package finds the Python gallery's classes: ${read.tops} for ${enrolled.map(([l]) => l)}`);

  const back = json(
    execFileSync(PYTHON, ['-c', PY_READ, model, fromNode, join(work, 'back'), file(extra[1][0]), ...queries], { encoding: 'utf8' }),
  );
  console.log(`# npm → python: ${back.classes.length} classes, tops ${back.tops.join(' ')}`);
  assert.deepEqual(back.classes, classes.map(([label]) => label).sort());
  assert.equal(back.tops[0], extra[0], 'the class enrolled in Node is found from Python');
  assert.deepEqual(back.metadata[0], { from: 'node' });
  assert.deepEqual(back.tops.slice(1), read.tops, 'Python ranks the imported gallery as Node did');
});
