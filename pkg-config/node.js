// metricann for Node.js (20+): the wasm module is read from disk, model paths
// and file: URLs are read with fs, the backend is the CPU and galleries live in
// memory (persist them with export() / MetricAnn.import()).
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { __configure } from './index.js';

__configure({
  wasm: () => readFile(new URL('./metricann_bg.wasm', import.meta.url)),
  loadModel: async (model, onProgress) => {
    if (/^https?:/i.test(model)) return null; // fetch() handles it
    const path = model.startsWith('file:') ? fileURLToPath(model) : model;
    let bytes;
    try {
      bytes = await readFile(path);
    } catch (e) {
      const err = new Error(`${path}: ${e.message}`);
      err.name = 'MetricAnnError';
      err.code = e.code === 'ENOENT' ? 'NOT_FOUND' : 'IO';
      throw err;
    }
    onProgress?.({ loaded: bytes.length, total: bytes.length });
    return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  },
});

export * from './index.js';
export { default } from './index.js';
