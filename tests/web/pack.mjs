// npm pack of pkg/ and installing the tarball into a fresh temporary project.
import { execFileSync } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { PKG } from './lib.mjs';

export function npm(args, cwd) {
  return execFileSync('npm', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Packs pkg/ and returns the tarball's path. */
export async function pack() {
  const dir = await mkdtemp(join(tmpdir(), 'metricann-pack-'));
  const out = JSON.parse(npm(['pack', PKG, '--pack-destination', dir, '--json'], dir));
  return { tarball: join(dir, out[0].filename), files: out[0].files.map((f) => f.path), size: out[0].size };
}

/** A temporary project with the tarball installed; `files` are written into it. */
export async function project(tarball, files = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'metricann-consumer-'));
  await writeFile(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2));
  for (const [name, text] of Object.entries(files)) await writeFile(join(dir, name), text);
  npm(['install', '--no-audit', '--no-fund', '--offline', tarball], dir);
  return dir;
}
