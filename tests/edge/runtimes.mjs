// The edge examples (examples/edge/) as a user runs them: the packed package
// installed into a fresh project, a gallery made with the package in Node, and
// each runtime started from its npm package's binary on a free port.
import { spawn, execFileSync } from 'node:child_process';
import { cp, readFile, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { ROOT } from '../web/lib.mjs';
import { pack, project } from '../web/pack.mjs';

const BIN = join(ROOT, 'tests/edge/node_modules/.bin');
const PHOTOS = join(ROOT, 'tests/fixtures/imagenet');
/** The classes of the test gallery: the ImageNet fixture photos. */
export const CLASSES = ['astronaut', 'chelsea', 'coffee', 'rocket'];

/** How each runtime starts its example, in the project `dir`, on `port`. */
export const RUNTIMES = {
  workerd: (dir, port) => ({
    cwd: join(dir, 'workerd'),
    command: join(BIN, 'wrangler'),
    args: ['dev', '--ip', '127.0.0.1', '--port', String(port), '--inspector-port', '0', '--log-level', 'info'],
    // The Worker opens the model on its first request: wait for wrangler, not for an answer.
    ready: /Ready on http/,
  }),
  deno: (dir, port) => ({
    cwd: join(dir, 'deno'),
    command: join(BIN, 'deno'),
    args: ['run', '--allow-read', '--allow-env', '--allow-net', 'server.js'],
  }),
  bun: (dir, port) => ({ cwd: join(dir, 'bun'), command: join(BIN, 'bun'), args: ['server.js'] }),
};

/**
 * A consumer project: the packed package, the examples, and `gallery.metricann`
 * holding the fixture photos plus `extraClasses` classes of random vectors.
 */
export async function edgeProject({ extraClasses = 0 } = {}) {
  const { tarball } = await pack();
  const dir = await project(tarball);
  await cp(join(ROOT, 'examples/edge'), dir, { recursive: true });
  await cp(join(ROOT, 'tests/edge/api'), join(dir, 'api'), { recursive: true });
  for (const label of ['coffee', 'chelsea']) await cp(join(PHOTOS, `${label}.png`), join(dir, 'api', `${label}.png`));
  const { MetricAnn } = await import(pathToFileURL(join(dir, 'node_modules/metricann/node.js')).href);
  const ann = await MetricAnn.open({ model: 'objects' });
  for (const label of CLASSES) await ann.enroll(label, await readFile(join(PHOTOS, `${label}.png`)));
  if (extraClasses > 0) await ann.enrollVectors(randomClasses(extraClasses, (await ann.stats()).dim));
  await writeFile(join(dir, 'gallery.metricann'), await ann.export({ format: 'bytes' }));
  await ann.close();
  return dir;
}

function randomClasses(count, dimension) {
  let seed = 7;
  const next = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31) - 0.5;
  return Array.from({ length: count }, (_, i) => ({
    label: `random-${i}`,
    vectors: [Float32Array.from({ length: dimension }, next)],
  }));
}

/** A camera-like capture of a fixture photo: cropped off-centre, brighter, a small JPEG. */
export function capture(label, out) {
  const filter = 'crop=iw*0.8:ih*0.8:iw*0.15:ih*0.1,scale=200:-1,eq=brightness=0.06';
  execFileSync('ffmpeg', ['-loglevel', 'error', '-y', '-i', join(PHOTOS, `${label}.png`), '-vf', filter, '-q:v', '12', out]);
  return out;
}

export function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

/**
 * Starts `runtime`'s example and resolves once it answers HTTP (any status), or
 * for wrangler, once it says it is ready.
 * Returns { url, process, log(), stop() }.
 */
export async function start(runtime, dir, { timeoutMs = 120_000, ...how } = {}) {
  const port = how.port ?? (await freePort());
  const { cwd, command, args, ready } = how.command ? how : RUNTIMES[runtime](dir, port);
  const env = {
    ...process.env,
    PORT: String(port),
    WRANGLER_SEND_METRICS: 'false',
    CI: '1',
    XDG_CONFIG_HOME: join(dir, '.config'),
    DENO_NO_UPDATE_CHECK: '1',
  };
  const child = spawn(command, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let output = '';
  child.stdout.on('data', (d) => (output += d));
  child.stderr.on('data', (d) => (output += d));
  const url = `http://127.0.0.1:${port}`;
  const stop = () => {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      // already gone
    }
  };
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${runtime} exited (${child.exitCode}):\n${output}`);
    try {
      if (ready && !ready.test(output)) throw new Error('not ready');
      if (!ready) await fetch(`${url}/`);
      return { url, process: child, log: () => output, stop };
    } catch {
      if (Date.now() > deadline) {
        stop();
        throw new Error(`${runtime} did not answer within ${timeoutMs} ms:\n${output}`);
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/**
 * Runs api/check.js (open with the model's bytes, embed, enroll, search,
 * export, import) on `runtime`; resolves with what it reported.
 */
export async function apiCheck(runtime, dir) {
  const api = join(dir, 'api');
  if (runtime === 'workerd') {
    const port = await freePort();
    const { command, args, ready } = RUNTIMES.workerd(dir, port);
    const server = await start('workerd', dir, { cwd: api, command, args, ready, port });
    try {
      const response = await fetch(`${server.url}/`);
      const text = await response.text();
      if (!response.ok) throw new Error(`workerd api check: ${response.status} ${text.slice(0, 500)}\n${server.log()}`);
      return JSON.parse(text);
    } finally {
      server.stop();
    }
  }
  const args = runtime === 'deno' ? ['run', '--allow-read', '--allow-env', 'deno.js'] : ['bun.js'];
  const out = execFileSync(join(BIN, runtime), args, { cwd: api, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  return JSON.parse(out.trim().split('\n').at(-1));
}

/** POSTs `body` to the example's /recognise: { status, body }. */
export async function recognise(url, body) {
  const response = await fetch(`${url}/recognise`, { method: 'POST', body });
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) };
  } catch {
    return { status: response.status, body: { notJson: text.slice(0, 2000) } };
  }
}
