// Every relative link and image path in the user-facing Markdown resolves to a file
// of the repository (tracked, or new and not ignored), and every #anchor to a heading
// of its target. Links that leave the repository (../shared/...) count as dead: a
// reader of a clone does not have them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync } from 'node:fs';
import { dirname, join, normalize, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

function mdIn(dir) {
  const abs = join(ROOT, dir);
  if (!existsSync(abs)) return [];
  return readdirSync(abs).filter((f) => f.endsWith('.md')).map((f) => join(dir, f));
}

const DOCS = ['README.md', 'bench/README.md', 'pkg-config/README.md', ...mdIn('docs'), ...mdIn('bench/notes')]
  .filter((f) => existsSync(join(ROOT, f)));

// The repository's files as a clean clone would have them.
const FILES = new Set(
  execFileSync('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], { cwd: ROOT })
    .toString().split('\0').filter(Boolean)
    .filter((f) => existsSync(join(ROOT, f))),
);
const DIRS = new Set();
for (const f of FILES) for (let d = dirname(f); d !== '.'; d = dirname(d)) DIRS.add(d);

/** Markdown without fenced code blocks. */
function unfenced(text) {
  return text.replace(/^([ \t]*)(```|~~~)[^\n]*\n[\s\S]*?^\1\2[^\n]*$/gm, '');
}

/** Markdown without code of either kind, where brackets are not links. */
function prose(text) {
  return unfenced(text).replace(/(`+)[^`\n]*?\1/g, '');
}

/** Link targets: inline links and images, reference definitions, HTML src/href. */
export function links(text) {
  const body = prose(text);
  const out = [];
  for (const m of body.matchAll(/!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"]*")?\s*\)/g)) out.push(m[1]);
  for (const m of body.matchAll(/^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)) out.push(m[1]);
  for (const m of body.matchAll(/<(?:img|a|source)\b[^>]*?\b(?:src|href)\s*=\s*"([^"]+)"/gi)) out.push(m[1]);
  return out;
}

/** GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens, -N for repeats. */
export function anchors(text) {
  const seen = new Map();
  const out = new Set();
  for (const m of unfenced(text).matchAll(/^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$/gm)) {
    const plain = m[1].replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/<[^>]+>/g, '');
    const slug = plain.toLowerCase().replace(/[^\p{L}\p{N}\s_-]/gu, '').replace(/\s/g, '-');
    const n = seen.get(slug) ?? 0;
    seen.set(slug, n + 1);
    out.add(n === 0 ? slug : `${slug}-${n}`);
  }
  return out;
}

function check(doc) {
  const text = readFileSync(join(ROOT, doc), 'utf8');
  const dead = [];
  for (const raw of links(text)) {
    if (/^[a-z][a-z0-9+.-]*:/i.test(raw)) continue; // https:, mailto: and the like
    const [pathPart, anchor] = raw.split('#', 2);
    const path = decodeURIComponent(pathPart);
    let target = doc;
    if (path) {
      target = normalize(join(dirname(doc), path)).split(sep).join('/').replace(/\/$/, '');
      if (target.startsWith('../') || target === '..' || !(FILES.has(target) || DIRS.has(target) || target === '.')) {
        dead.push(`${raw}: no such file in the repository`);
        continue;
      }
    }
    if (anchor && target.endsWith('.md') && FILES.has(target)) {
      const heads = anchors(readFileSync(join(ROOT, target), 'utf8'));
      if (!heads.has(anchor.toLowerCase())) dead.push(`${raw}: no heading #${anchor} in ${target}`);
    }
  }
  return dead;
}

test('the documents to check exist', () => {
  assert.ok(DOCS.includes('README.md'), 'README.md is missing');
});

for (const doc of DOCS) {
  test(`every relative link in ${doc} resolves`, () => {
    const dead = check(doc);
    assert.deepEqual(dead, [], `dead links in ${relative(ROOT, join(ROOT, doc))}:\n  ${dead.join('\n  ')}`);
  });
}

test('the link finder sees links, images and anchors, and skips code', () => {
  const md = '# A `b` c\n[x](docs/a.md#s) ![i](p.png "t")\n`[no](n.md)`\n```\n[no](m.md)\n```\n[r]: ref.md\n<img src="h.png">';
  assert.deepEqual(links(md), ['docs/a.md#s', 'p.png', 'ref.md', 'h.png']);
  assert.ok(anchors('## The default model\n## Formats: bundle, gallery\n## The default model').has('the-default-model-1'));
  assert.ok(anchors('## Formats: bundle, gallery').has('formats-bundle-gallery'));
  assert.ok(anchors('## The `SEGP` layout').has('the-segp-layout'));
  assert.ok(anchors('text\n\n```sh\n# not a heading\n```\n\n## After a fence').has('after-a-fence'));
  assert.ok(!anchors('```sh\n# not a heading\n```').has('not-a-heading'));
});
