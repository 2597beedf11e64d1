#!/usr/bin/env node
// A tiny static server for the demo app (`make demo`) and its tests: www/ at `/`,
// the built npm package at `/pkg/` (as if it were copied to www/pkg/), with the
// right MIME types (.wasm as application/wasm), Content-Length (the app's
// download progress bars), and ETag revalidation (the service worker fetches
// the network first; a 304 keeps that cheap). Every response carries the two headers
// that make the page cross-origin isolated (COOP same-origin, COEP require-corp), so
// the package may use SharedArrayBuffer and its threaded build; --no-isolation
// leaves them out (the single-threaded build then runs).
//
//   node scripts/demo-server.mjs [--port 8080] [--host 127.0.0.1] [--root www] [--pkg pkg] [--no-isolation]
import { createServer } from 'node:http';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { extname, join, normalize, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.webmanifest': 'application/manifest+json',
  '.wasm': 'application/wasm',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.ico': 'image/x-icon',
  '.md': 'text/markdown; charset=utf-8',
  '.ts': 'text/plain; charset=utf-8',
};

/** What a page must be served with to be cross-origin isolated (SharedArrayBuffer, threads). */
export const ISOLATION_HEADERS = Object.freeze({
  'cross-origin-opener-policy': 'same-origin',
  'cross-origin-embedder-policy': 'require-corp',
});

/**
 * Serves `mounts` ({ '/': dir, '/pkg/': dir }) on host:port (0: a free one),
 * cross-origin isolated unless `isolated` is false. Resolves to { origin,
 * setDown(bool), close() }; while down, every connection is dropped without an
 * answer, as if the network were gone.
 */
export async function startServer({ mounts, port = 0, host = '127.0.0.1', log = false, isolated = true }) {
  const prefixes = Object.keys(mounts).sort((a, b) => b.length - a.length);
  let down = false;
  const server = createServer(async (req, res) => {
    if (down) {
      req.socket.destroy();
      return;
    }
    try {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD' }).end();
        return;
      }
      const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
      const prefix = prefixes.find((p) => path.startsWith(p));
      if (!prefix) throw Object.assign(new Error('not found'), { code: 'ENOENT' });
      const base = resolve(mounts[prefix]);
      let file = normalize(join(base, path.slice(prefix.length)));
      if (file !== base && !file.startsWith(base + sep)) throw Object.assign(new Error('not found'), { code: 'ENOENT' });
      let info = await stat(file);
      if (info.isDirectory()) {
        file = join(file, 'index.html');
        info = await stat(file);
      }
      const etag = `"${info.size.toString(36)}-${Math.floor(info.mtimeMs).toString(36)}"`;
      const headers = {
        'content-type': TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
        'cache-control': 'no-cache',
        etag,
        'x-content-type-options': 'nosniff',
        ...(isolated ? ISOLATION_HEADERS : {}),
      };
      if (req.headers['if-none-match'] === etag) {
        res.writeHead(304, headers).end();
        return;
      }
      res.writeHead(200, { ...headers, 'content-length': info.size });
      if (req.method === 'HEAD') res.end();
      else createReadStream(file).pipe(res);
      if (log) console.log(`${req.method} ${path} 200`);
    } catch (e) {
      const missing = e.code === 'ENOENT' || e.code === 'ENOTDIR';
      res.writeHead(missing ? 404 : 500, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(missing ? 'not found' : String(e.message));
      if (log) console.log(`${req.method} ${req.url} ${missing ? 404 : 500}`);
    }
  });
  await new Promise((ok, fail) => {
    server.once('error', fail);
    server.listen(port, host, ok);
  });
  const address = server.address();
  return {
    origin: `http://${host}:${address.port}`,
    setDown(value) {
      down = Boolean(value);
      if (down) server.closeIdleConnections?.();
    },
    close() {
      server.closeAllConnections?.();
      return new Promise((ok) => server.close(ok));
    },
  };
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const opt = (name, fallback) => {
    const i = args.indexOf(`--${name}`);
    return i >= 0 ? args[i + 1] : fallback;
  };
  const root = resolve(opt('root', 'www'));
  const pkg = resolve(opt('pkg', 'pkg'));
  const host = opt('host', '127.0.0.1');
  const port = Number(opt('port', '8080'));
  const isolated = !args.includes('--no-isolation');
  try {
    await stat(join(pkg, 'index.js'));
  } catch {
    console.error(`demo-server: ${pkg}/index.js is missing: build the package first (make pkg)`);
    process.exit(1);
  }
  let server;
  try {
    server = await startServer({
      mounts: { '/': root, '/pkg/': pkg },
      port,
      host,
      log: args.includes('--log'),
      isolated,
    });
  } catch (e) {
    console.error(
      e.code === 'EADDRINUSE'
        ? `demo-server: ${host}:${port} is in use (another demo running?); pick another port: make demo DEMO_PORT=8081`
        : `demo-server: ${e.message}`,
    );
    process.exit(1);
  }
  const mode = isolated ? 'cross-origin isolated: threads' : 'not isolated: one thread';
  console.log(`MetricANN demo: ${server.origin}/  (www: ${root}, package: ${pkg}; ${mode}; Ctrl-C stops)`);
}
