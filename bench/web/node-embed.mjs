// Embed latency of the shipped models through the npm package in Node (CPU,
// wasm SIMD): p50 and min of 8 after a warm-up. Compares wasm builds quickly.
// Usage: node bench/web/node-embed.mjs [PKG_DIR]   (default: pkg/)
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const pkg = resolve(process.argv[2] ?? 'pkg');
const { MetricAnn } = await import(pathToFileURL(`${pkg}/node.js`).href);
const img = new Uint8Array(await readFile(new URL('../../tests/fixtures/imagenet/coffee.png', import.meta.url)));
for (const model of ['glyphs', 'objects']) {
  const ann = await MetricAnn.open({ model });
  await ann.embed(img);
  const t = [];
  for (let i = 0; i < 8; i++) {
    const t0 = performance.now();
    await ann.embed(img);
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  console.log(`${model}: p50 ${t[4].toFixed(1)} ms, min ${t[0].toFixed(1)} ms`);
  await ann.close();
}
