// The npm package on the edge: examples/edge/ run on Cloudflare's workerd
// (wrangler dev), Deno and Bun, each from its npm package. Two camera-like
// captures of gallery photos come back as their class; a body that is not an
// image is a 400 with BAD_IMAGE. Then the rest of the API in each runtime
// (tests/edge/api/): the model as bytes, embed, enroll, search, export, import.
import test, { before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { RUNTIMES, edgeProject, capture, start, recognise, apiCheck } from './runtimes.mjs';

let dir;
const photos = {};

before(async () => {
  dir = await edgeProject();
  const captures = await mkdtemp(join(tmpdir(), 'metricann-captures-'));
  for (const label of ['chelsea', 'coffee']) {
    photos[label] = await readFile(capture(label, join(captures, `${label}.jpg`)));
  }
});

for (const runtime of Object.keys(RUNTIMES)) {
  test(`${runtime} runs the example: photos recognised, a bad image refused`, { timeout: 300_000 }, async () => {
    const server = await start(runtime, dir);
    try {
      for (const [label, bytes] of Object.entries(photos)) {
        const { status, body } = await recognise(server.url, bytes);
        assert.equal(status, 200, `${runtime}, ${label}: ${JSON.stringify(body)}\n${server.log()}`);
        assert.equal(body.matches.length, 3, `${runtime}, ${label}: top-3`);
        assert.equal(body.matches[0].label, label, `${runtime}: ${JSON.stringify(body.matches)}`);
        assert.ok(body.matches[0].score > body.matches[1].score, `${runtime}, ${label}: scores ordered`);
        assert.equal(body.unknown, false);
        console.log(`# ${runtime}: ${label} → ${body.matches.map((m) => `${m.label} ${m.score.toFixed(3)}`).join(', ')}`);
      }
      const bad = await recognise(server.url, new TextEncoder().encode('not an image'));
      assert.equal(bad.status, 400, `${runtime}: ${JSON.stringify(bad.body)}`);
      assert.equal(bad.body.code, 'BAD_IMAGE');
      const empty = await recognise(server.url, new Uint8Array(0));
      assert.equal(empty.status, 400, `${runtime}, empty body: ${JSON.stringify(empty.body)}`);
    } finally {
      server.stop();
    }
  });

  test(`${runtime} runs the API with the model as bytes: open, embed, enroll, search, export, import`, { timeout: 300_000 }, async () => {
    const out = await apiCheck(runtime, dir);
    console.log(`# ${runtime}: ${JSON.stringify(out)}`);
    assert.equal(out.backend, 'cpu');
    assert.equal(out.dim, 128);
    assert.ok(Math.abs(out.norm - 1) < 1e-3, `unit length: ${out.norm}`);
    assert.equal(out.classes, 2);
    assert.deepEqual(out.top, ['chelsea', 'coffee']);
    assert.ok(out.exportedBytes > 0);
    assert.equal(out.copyClasses, 2);
    assert.equal(out.copyTop, 'coffee');
    assert.equal(out.bad, 'BAD_IMAGE');
  });
}
