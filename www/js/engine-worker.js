// The recognition worker. It is the package's own worker (pkg/worker.js: the
// MetricAnn API for createWorker()), plus one message of the app's: "load",
// which downloads the WebAssembly module with progress reports before the
// gallery is opened (the package's own initialize() fetches it silently).
import { initialize, threadsSupported } from '../pkg/index.js';
import '../pkg/worker.js';

/**
 * `threads`: the page lets the threaded build run (the app asked for no WebGPU;
 * that build has none). It runs when the page is also cross-origin isolated
 * (scripts/demo-server.mjs sends COOP and COEP): index builds then use every core.
 */
async function load(threads) {
  const threaded = threads && threadsSupported();
  const WASM = new URL(threaded ? '../pkg/threads/metricann_bg.wasm' : '../pkg/metricann_bg.wasm', import.meta.url);
  const res = await fetch(WASM);
  if (!res.ok) throw new Error(`${WASM.pathname}: HTTP ${res.status} ${res.statusText}`);
  let total = Number(res.headers.get('content-length')) || null;
  // A compressed transfer's Content-Length counts compressed bytes.
  if (res.headers.get('content-encoding')) total = null;
  const reader = res.body.getReader();
  const chunks = [];
  let loaded = 0;
  let last = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    loaded += value.length;
    const now = performance.now();
    if (now - last > 50) {
      last = now;
      self.postMessage({ app: 'load-progress', loaded, total });
    }
  }
  self.postMessage({ app: 'load-progress', loaded, total: loaded });
  const wasm = new Response(new Blob(chunks), { headers: { 'content-type': 'application/wasm' } });
  await initialize(wasm, { threads: threaded ? 'auto' : 1 });
}

self.addEventListener('message', async (event) => {
  if (event.data?.app !== 'load') return;
  try {
    await load(event.data.threads === true);
    self.postMessage({ app: 'loaded' });
  } catch (e) {
    self.postMessage({ app: 'load-failed', message: e?.message ?? String(e) });
  }
});
