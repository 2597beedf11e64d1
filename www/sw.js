// MetricANN demo service worker: the app, the package (its JS and wasm) and the
// models are cached at install, so after the first visit the app starts and
// recognises with no network. Requests go to the network first (so a rebuilt
// package or a new model is picked up at once, its JS and wasm together), and
// fall back to the cache when the network fails.
// The threaded build's worker helper (pkg/threads/snippets/, a hashed path) is
// found in the import lines of that build's JS.
const CACHE = 'metricann-demo-v4';
const FILES = [
  './',
  'index.html',
  'css/base.css',
  'css/camera.css',
  'css/panels.css',
  'manifest.webmanifest',
  'icons/icon.svg',
  'icons/icon-192.png',
  'icons/icon-512.png',
  'js/app.js',
  'js/ui.js',
  'js/engine.js',
  'js/engine-worker.js',
  'js/camera.js',
  'js/live.js',
  'js/enroll.js',
  'js/gallery.js',
  'pkg/index.js',
  'pkg/metricann.js',
  'pkg/worker.js',
  'pkg/metricann_bg.wasm',
  'pkg/threads/metricann.js',
  'pkg/threads/metricann_bg.wasm',
  'models/objects.bundle',
  'models/glyphs.bundle',
];

self.addEventListener('install', (event) => {
  event.waitUntil(
    (async () => {
      const cache = await caches.open(CACHE);
      await cache.addAll([...FILES, ...(await snippets('pkg/threads/metricann.js'))]);
      await self.skipWaiting();
    })(),
  );
});

/** The files `glue` (wasm-bindgen's JS) imports from its snippets/ folder. */
async function snippets(glue) {
  const res = await fetch(glue);
  if (!res.ok) throw new Error(`${glue}: HTTP ${res.status}`);
  const base = glue.slice(0, glue.lastIndexOf('/') + 1);
  return [...(await res.text()).matchAll(/from '\.\/(snippets\/[^']+)'/g)].map((m) => base + m[1]);
}

self.addEventListener('activate', (event) => {
  event.waitUntil(
    (async () => {
      for (const key of await caches.keys()) if (key !== CACHE) await caches.delete(key);
      await self.clients.claim();
    })(),
  );
});

self.addEventListener('fetch', (event) => {
  const request = event.request;
  if (request.method !== 'GET' || request.headers.has('range')) return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin) return;
  event.respondWith(networkFirst(event, request));
});

async function networkFirst(event, request) {
  const cache = await caches.open(CACHE);
  try {
    const response = await fetch(request);
    if (response.ok && response.type === 'basic') {
      // Store it unless the cache already has this very version (the wasm is megabytes).
      const cached = await cache.match(request, { ignoreSearch: true });
      const etag = response.headers.get('etag');
      if (!cached || !etag || cached.headers.get('etag') !== etag) {
        event.waitUntil(cache.put(cacheKey(request), response.clone()));
      }
    }
    return response;
  } catch (error) {
    const cached =
      (await cache.match(cacheKey(request), { ignoreSearch: true })) ??
      (request.mode === 'navigate' ? await cache.match('index.html') : undefined);
    if (cached) return cached;
    throw error;
  }
}

/** Pages are stored under their path (no query), so ?backend=cpu shares the entry. */
function cacheKey(request) {
  const url = new URL(request.url);
  url.search = '';
  url.hash = '';
  return url.href;
}
