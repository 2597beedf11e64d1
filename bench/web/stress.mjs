// One IndexedDB gallery under load in headless Chromium (not part of `make test`;
// `make stress-web`): the browser side of `metricann stress` (trainer/src/stress.rs),
// with the same journal checks and report fields.
//
// Two tabs and a worker share the gallery for --minutes (default 10):
// - tab A runs a worker from createWorker() that holds the gallery (and its Web Lock)
//   and mutates it without pause: enrollVectors of 1-3 new classes (1-3 vectors each,
//   one transaction), remove, rename, setMetadata, maintain, optimize. Node keeps the
//   journal of acknowledged mutations (a sequence number each).
// - tab B reloads itself, opens the gallery (read-only: the lock is held elsewhere),
//   checks it against the journal, searches it and tries one write (must be LOCKED);
//   it does not close the gallery: the reload tears the JS context down.
// - tab A's main thread does the same without reloading, open()/close() in one JS
//   context, so that a leak across reopens would show in its wasm memory.
// Labels are never reused, so the checks are exact: a mutation acknowledged before a
// reader began opening is there unless a later one touched that class, a class whose
// removal was acknowledged before is neither listed nor returned, an enrollVectors of
// several classes is all there or not at all, a rename never shows both names, and
// a class's own vector finds it at top-1. Any error but the probes' LOCKED, any
// console error or warning, is a violation.
// Then the gallery is reopened in a fresh page and must hold exactly the journal's
// classes (examples, metadata), and that page runs --cycles enroll/remove cycles
// (default 10,000) on the main thread, sampling wasm memory, the JS heap after gc,
// the IndexedDB records and the origin's usage, which must stay flat.
// Vectors are made in the page from the label (seeded PRNG), so Node passes labels.
// Usage: node bench/web/stress.mjs [--minutes 10] [--cycles 10000] [--out F] [--seed 1]
//   [--batch 4] [--tolerance 0.1]. Exit status 1 on any violation, lost write or growth.
import { writeFile, mkdir } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { HERE, ROOT, PKG, MODELS, CHROMIUM, BASE_ARGS, serve, launch, flag } from '../../tests/web/lib.mjs';

const MINUTES = Number(flag('minutes', '10'));
const CYCLES = Number(flag('cycles', '10000'));
const OUT = flag('out', join(ROOT, 'bench/results/stress-web.json'));
const SEED = Number(flag('seed', '1'));
/** Mutations per page.evaluate of the writer: all of a batch count as in flight until it returns. */
const BATCH = Number(flag('batch', '4'));
/** How far a memory figure's high late in the cycles may be above its high early on (FLAT_RULE). */
const TOLERANCE = Number(flag('tolerance', '0.1'));
const OPEN = { model: '/models/default.bundle', gallery: 'stress', backend: 'cpu' };
/** The gallery drifts around TARGET classes, between MIN and MAX, so that reloads stay quick. */
const [MIN, TARGET, MAX] = [200, 1000, 2000];
const PROBES = ['enroll', 'remove', 'rename', 'metadata'];

/** A seeded PRNG (the writer's choices in Node, the vectors in the page). */
const mulberry32 = (a) => () => {
  a = (a + 0x6d2b79f5) | 0;
  let t = Math.imul(a ^ (a >>> 15), 1 | a);
  t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
/** A renamed class keeps its vectors: 'r9/c5' has c5's, so the key is what follows '/'. */
const vkey = (label) => label.slice(label.indexOf('/') + 1);

// ---- in the page: every page of the context runs it, with mulberry32 and vkey (main()) ----
function inPage() {
  const hash = (s) => {
    let x = 2166136261;
    for (let i = 0; i < s.length; i++) x = Math.imul(x ^ s.charCodeAt(i), 16777619);
    return x >>> 0;
  };
  /** Unit vector `i` of key `key`: the same in every page. */
  const vector = (key, i, dim) => {
    const r = mulberry32(hash(`${key}#${i}`));
    const v = new Float32Array(dim);
    let n = 0;
    for (let j = 0; j < dim; j++) n += (v[j] = r() * 2 - 1) ** 2;
    for (let j = 0; j < dim; j++) v[j] /= Math.sqrt(n);
    return v;
  };
  const fail = (e) => ({ ok: false, code: e?.code ?? null, message: String(e?.message ?? e) });
  const entries = (list, dim) =>
    list.map((e) => ({
      label: e.label,
      vectors: Array.from({ length: e.n }, (_, i) => vector(vkey(e.label), i, dim)),
      ...(e.meta === undefined ? {} : { metadata: e.meta }),
    }));
  /** Applies the writer's ops in order; an ack per op, up to the first failure. */
  async function apply(ann, dim, ops) {
    const acks = [];
    for (const op of ops) {
      try {
        const value = await {
          enroll: () => ann.enrollVectors(entries(op.entries, dim)),
          remove: () => ann.remove(op.label),
          rename: () => ann.rename(op.label, op.to),
          metadata: () => ann.setMetadata(op.label, op.meta),
          maintain: () => ann.maintain(),
          optimize: () => ann.optimize().then(() => true),
        }[op.kind]();
        acks.push({ ok: true, value: typeof value === 'boolean' ? value : null });
      } catch (e) {
        acks.push(fail(e));
        break;
      }
    }
    return acks;
  }
  /** A write a read-only instance must refuse with LOCKED. */
  async function probe(ann, kind, label, dim) {
    const write = {
      enroll: () => ann.enrollVectors([{ label: 'probe', vectors: [vector('probe', 0, dim)] }]),
      remove: () => ann.remove(label),
      rename: () => ann.rename(label, 'probe'),
      metadata: () => ann.setMetadata(label, { probe: true }),
    }[kind];
    try {
      await write();
      return { ok: true };
    } catch (e) {
      return fail(e);
    }
  }
  async function searches(ann, dim, own, gone) {
    const out = [];
    for (const [kind, q] of [...own.map((q) => ['own', q]), ...gone.map((q) => ['gone', q])]) {
      try {
        const r = await ann.searchVector(vector(vkey(q), 0, dim), { k: 1, threshold: -1 });
        out.push({ kind, q, top: r.matches[0]?.label ?? null, score: r.matches[0]?.score ?? null });
      } catch (e) {
        out.push({ kind, q, error: fail(e) });
      }
    }
    return out;
  }
  /** One reader round: open, list, search, probe, close unless `keep`. */
  async function read({ open, sample, gone, probeKind, keep }) {
    let ann;
    try {
      ann = await h.MetricAnn.open(open);
    } catch (e) {
      return { error: `open: ${e?.code} ${e?.message}` };
    }
    try {
      const s = await ann.stats();
      const seen = (await ann.classes()).map((c) => [c.label, c.examples, c.metadata]);
      const own = Array.from({ length: Math.min(sample, seen.length) }, () => seen[Math.floor(Math.random() * seen.length)][0]);
      const found = await searches(ann, s.dim, own, gone);
      const write = await probe(ann, probeKind, own[0] ?? 'c1', s.dim);
      if (!keep) await ann.close();
      return { writable: s.writable, lock: s.lock, wasm: s.wasmMemoryBytes, seen, searches: found, write };
    } catch (e) {
      return { error: `${e?.code} ${e?.message}` };
    }
  }
  /** The gallery's IndexedDB records: how many, and their bytes. */
  async function records(gallery) {
    const req = (r) => new Promise((ok, ko) => ((r.onsuccess = () => ok(r.result)), (r.onerror = () => ko(r.error))));
    const db = await req(indexedDB.open(`metricann:${gallery}`));
    const values = await req(db.transaction('blobs', 'readonly').objectStore('blobs').getAll());
    db.close();
    return { count: values.length, bytes: values.reduce((a, v) => a + (v instanceof Blob ? v.size : v.byteLength), 0) };
  }
  async function sample(ann) {
    for (let i = 0; i < 3; i++) window.gc?.(); // --expose-gc: the heap as it is, not as it was
    const s = await ann.stats();
    const idb = await records(s.gallery);
    return {
      wasm_memory_bytes: s.wasmMemoryBytes,
      js_heap_bytes: performance.memory?.usedJSHeapSize ?? null,
      gallery_bytes: s.bytes,
      vectors: s.vectors,
      deleted: s.deleted,
      segments: s.segments.length,
      idb_records: idb.count,
      idb_bytes: idb.bytes,
      estimate_usage_bytes: (await navigator.storage.estimate()).usage,
    };
  }
  /** Enroll/remove cycles, with maintain() after each as an application would call it. */
  async function cycles(ann, from, count) {
    const { dim } = await ann.stats();
    for (let i = from; i < from + count; i++) {
      const label = `m${i}`;
      await ann.enrollVectors([{ label, vectors: [vector(label, 0, dim)] }]);
      await ann.remove(label);
      await ann.maintain();
    }
  }
  /** Every class, and its own vector's top-1 (the final check). */
  async function everything(ann) {
    const s = await ann.stats();
    const classes = (await ann.classes()).map((c) => [c.label, c.examples, c.metadata]);
    const found = await searches(ann, s.dim, classes.map((c) => c[0]), []);
    return { writable: s.writable, lock: s.lock, classes, searches: found };
  }
  window.stress = { apply, read, sample, cycles, everything };
}

// ---- Node side ----
/** JSON with sorted keys: metadata comes back with the gallery's key order. */
const canon = (v) =>
  v && typeof v === 'object' && !Array.isArray(v)
    ? `{${Object.keys(v).sort().map((k) => `${JSON.stringify(k)}:${canon(v[k])}`).join(',')}}`
    : JSON.stringify(v ?? null);

const violations = { count: 0, first: [] };
/** Set when the timed phase ends, or when so much failed that going on tells nothing more. */
const stop = { now: false };
function violation(where, what) {
  if (++violations.count >= 1000) stop.now = true;
  if (violations.first.length < 20) {
    violations.first.push(`${where}: ${what}`);
    console.error(`VIOLATION ${where}: ${what}`);
  }
}

/** What the writer has acknowledged, and what it is applying. */
class Journal {
  seq = 0;
  present = new Map(); // label → { n: vectors, meta: canonical JSON, seq: last ack touching it }
  labels = []; // present labels, for random picks
  where = new Map(); // label → its index in `labels`
  gone = new Map(); // label → seq of its acknowledged remove or rename away
  goneOrder = [];
  examples = new Map(); // label → vectors, for every label ever acknowledged
  inflight = []; // the ops of the batch being applied
  recent = []; // acknowledged multi-class enrolls and renames: { seq, op }

  put(label, n, meta) {
    if (!this.where.has(label)) this.where.set(label, this.labels.push(label) - 1);
    this.present.set(label, { n, meta, seq: this.seq });
    this.examples.set(label, n);
  }
  drop(label) {
    const i = this.where.get(label);
    const last = this.labels.pop();
    if (last !== label) this.labels[i] = last, this.where.set(last, i);
    this.where.delete(label);
    const entry = this.present.get(label);
    this.present.delete(label);
    this.gone.set(label, this.seq);
    this.goneOrder.push(label);
    return entry;
  }
  ack(op) {
    this.seq++;
    if (op.kind === 'enroll') for (const e of op.entries) this.put(e.label, e.n, canon(e.meta));
    if (op.kind === 'remove') this.drop(op.label);
    if (op.kind === 'metadata') this.put(op.label, this.present.get(op.label).n, canon(op.meta));
    if (op.kind === 'rename') {
      const { n, meta } = this.drop(op.label);
      this.put(op.to, n, meta);
    }
    if (op.kind === 'rename' || (op.kind === 'enroll' && op.entries.length > 1)) {
      this.recent.push({ seq: this.seq, op });
      if (this.recent.length > 4000) this.recent.splice(0, 2000);
    }
  }
  snapshot() {
    return { seq: this.seq, present: new Map(this.present), gone: this.goneOrder.slice(-4) };
  }
  inflightLabels() {
    return new Set(this.inflight.flatMap((op) => (op.kind === 'enroll' ? op.entries.map((e) => e.label) : [op.label, op.to])));
  }
}

/** The writer's next batch; no label twice in it, so each op applies whatever came before. */
function plan(j, rand, fresh) {
  const ops = [];
  const used = new Set();
  const pick = () => {
    for (let t = 0; t < 8 && j.labels.length; t++) {
      const l = j.labels[Math.floor(rand() * j.labels.length)];
      if (!used.has(l)) return used.add(l), l;
    }
    return null;
  };
  const enroll = () => ({
    kind: 'enroll',
    entries: Array.from({ length: 1 + Math.floor(rand() * 3) }, () => {
      const label = `c${fresh()}`;
      return { label, n: 1 + Math.floor(rand() * 3), meta: rand() < 0.5 ? { k: label, n: fresh() } : undefined };
    }),
  });
  while (ops.length < BATCH) {
    const n = j.present.size;
    const r = rand() * 100;
    const grow = n < TARGET ? 40 : 20; // enroll weight; remove takes 65 - grow
    const label = n < MIN ? null : n > MAX || r >= grow ? pick() : null;
    if (label === null) ops.push(enroll());
    else if (r < 65) ops.push({ kind: 'remove', label });
    else if (r < 77) ops.push({ kind: 'rename', label, to: `r${fresh()}/${vkey(label)}` });
    else if (r < 95) ops.push({ kind: 'metadata', label, meta: rand() < 0.2 ? null : { n: fresh(), t: 'm' } });
    else if (r < 99.5) ops.push({ kind: 'maintain' });
    else ops.push({ kind: 'optimize' });
  }
  return ops;
}

const byKind = { enroll: 0, remove: 0, rename: 0, metadata: 0, maintain: 0, optimize: 0 };
const counts = { mutations: 0, enrolled_classes: 0, maintain_did_work: 0, writer_wasm: [] };

async function writer(page, j) {
  const rand = mulberry32(SEED);
  let next = 0;
  let statsAt = 0;
  while (!stop.now) {
    const ops = plan(j, rand, () => ++next);
    j.inflight = ops;
    let acks;
    try {
      acks = await page.evaluate(([ops]) => stress.apply(window.wann, window.dim, ops), [ops]);
    } catch (e) {
      violation('writer', `evaluate failed: ${e.message}`);
      break;
    }
    ops.forEach((op, i) => {
      if (acks[i]?.ok) {
        j.ack(op);
        counts.mutations++;
        byKind[op.kind]++;
        if (op.kind === 'enroll') counts.enrolled_classes += op.entries.length;
        if (acks[i].value === true && op.kind === 'maintain') counts.maintain_did_work++;
      } else if (acks[i]) violation(`writer ${op.kind}`, `${acks[i].code}: ${acks[i].message} (${JSON.stringify(op).slice(0, 200)})`);
    });
    j.inflight = [];
    if (Date.now() - statsAt > 10e3) {
      statsAt = Date.now();
      counts.writer_wasm.push(await page.evaluate(async () => (await window.wann.stats()).wasmMemoryBytes));
    }
  }
}

/** A reader's view against the journal as it was before the open (`b`) and as it is now. */
function checkView(who, seen, b, j) {
  const inflight = j.inflightLabels();
  const after = (l) => j.gone.has(l) || inflight.has(l); // touched since: either state is allowed
  for (const l of b.present.keys()) if (!seen.has(l) && !after(l)) violation(who, `acknowledged class ${l} missing`);
  for (const [l, [examples, meta]] of seen) {
    const goneAt = j.gone.get(l);
    if (goneAt !== undefined && goneAt <= b.seq) violation(who, `class ${l} listed after its removal was acknowledged`);
    const n = j.examples.get(l);
    if (n === undefined && !inflight.has(l)) violation(who, `class ${l} was never written`);
    else if (n !== undefined && examples !== n) violation(who, `class ${l} has ${examples} examples, not ${n}: half there`);
    const was = b.present.get(l);
    const now = j.present.get(l);
    if (was && now && now.seq <= b.seq && !inflight.has(l) && canon(meta) !== was.meta)
      violation(who, `class ${l} metadata ${canon(meta)}, acknowledged ${was.meta}`);
  }
  // Acknowledged since the open began, or being applied: all or nothing of each. Only
  // a later remove or rename (acknowledged or being applied) may take a class away.
  const later = new Set(j.inflight.filter((op) => op.kind === 'remove' || op.kind === 'rename').map((op) => op.label));
  const away = (l) => seen.has(l) || j.gone.has(l) || later.has(l);
  const recent = j.recent.filter((r) => r.seq > b.seq).map((r) => r.op).concat(j.inflight);
  for (const op of recent) {
    if (op.kind === 'enroll' && op.entries.length > 1) {
      const labels = op.entries.map((e) => e.label);
      const there = labels.filter((l) => seen.has(l));
      if (there.length && !labels.every(away)) violation(who, `enrollVectors of ${labels} half there: ${there}`);
    }
    if (op.kind === 'rename' && seen.has(op.label) && seen.has(op.to)) violation(who, `rename ${op.label} → ${op.to}: both listed`);
    // (Only for a class there before the open: one enrolled since may postdate the view.)
    if (op.kind === 'rename' && b.present.has(op.label) && !seen.has(op.label) && !away(op.to))
      violation(who, `rename ${op.label} → ${op.to}: neither listed`);
  }
}

function checkSearches(who, searches, seen, b, j, totals) {
  for (const s of searches) {
    if (s.error) {
      violation(who, `search for ${s.q} failed: ${s.error.code} ${s.error.message}`);
      continue;
    }
    totals.searches++;
    if (s.top !== null && !seen.has(s.top)) violation(who, `search returned ${s.top}, which classes() did not list`);
    const goneAt = j.gone.get(s.top);
    if (goneAt !== undefined && goneAt <= b.seq) violation(who, `search returned ${s.top} after its removal was acknowledged`);
    if (s.kind === 'own' && s.top !== s.q) violation(who, `${s.q}'s own vector found ${s.top} (score ${s.score})`);
  }
}

/** A reader in `page`, adding to `totals`: reloads before each round when `reload`, else open()/close() in one context. */
async function reader(who, page, j, totals, reload) {
  for (let round = 0; !stop.now; round++) {
    if (reload && round > 0) {
      await page.reload();
      await page.waitForFunction(() => window.ready === true);
    }
    const b = j.snapshot();
    const args = { open: OPEN, sample: 8, gone: b.gone, probeKind: PROBES[round % PROBES.length], keep: reload };
    const r = await page.evaluate((a) => stress.read(a), args);
    if (r.error) {
      violation(who, r.error);
      continue;
    }
    totals.opens++;
    if (totals.opens % 20 === 1) totals.wasm_memory_bytes.push(r.wasm);
    if (r.writable !== false || r.lock !== 'held-elsewhere') violation(who, `opened with writable ${r.writable}, lock ${r.lock}`);
    if (r.write.ok) violation(who, `a ${args.probeKind} from a read-only instance succeeded`);
    else if (r.write.code === 'LOCKED') totals.locked_as_expected++;
    else violation(who, `a ${args.probeKind} from a read-only instance failed with ${r.write.code}, not LOCKED: ${r.write.message}`);
    const seen = new Map(r.seen.map(([l, n, m]) => [l, [n, m]]));
    checkView(who, seen, b, j);
    checkSearches(who, r.searches, seen, b, j, totals);
  }
  return totals;
}

/** The gallery reopened against the journal, exactly; own-vector top-1 of every class. */
async function finalCheck(page, j, who) {
  const r = await page.evaluate(async (open) => {
    window.ann = await h.MetricAnn.open(open);
    return stress.everything(window.ann);
  }, OPEN);
  if (!r.writable) violation(who, `the writer closed, yet the gallery opened with writable ${r.writable}, lock ${r.lock}`);
  const seen = new Map(r.classes.map(([l, n, m]) => [l, [n, canon(m)]]));
  const missing = [...j.present.keys()].filter((l) => !seen.has(l));
  const extra = [...seen.keys()].filter((l) => !j.present.has(l));
  const wrong = [...j.present].filter(([l, e]) => seen.has(l) && (seen.get(l)[0] !== e.n || seen.get(l)[1] !== e.meta)).map(([l]) => l);
  for (const l of missing.slice(0, 5)) violation(who, `acknowledged class ${l} lost`);
  for (const l of extra.slice(0, 5)) violation(who, `unacknowledged class ${l} present`);
  for (const l of wrong.slice(0, 5)) violation(who, `class ${l}: ${JSON.stringify(seen.get(l))}, acknowledged ${JSON.stringify(j.present.get(l))}`);
  const misses = r.searches.filter((s) => s.error || s.top !== s.q);
  for (const s of misses.slice(0, 5)) violation(who, `${s.q}'s own vector: ${s.error ? s.error.message : s.top}`);
  return { classes: seen.size, missing: missing.length, extra: extra.length, wrong: wrong.length, search_misses: misses.length };
}

async function usage(cdp, origin) {
  const u = await cdp.send('Storage.getUsageAndQuota', { origin });
  return { origin_usage_bytes: u.usage, origin_indexeddb_bytes: u.usageBreakdown.find((b) => b.storageType === 'indexeddb')?.usage ?? null };
}

/** --cycles enroll/remove cycles in `page` (the gallery open as window.ann), sampled 50 times. */
async function memoryPhase(page, cdp, origin) {
  // Often: storage is a sawtooth (a growing segment of 1,024 vectors fills with removed
  // ones, is sealed, then compacted), and sparse samples would alias it.
  const every = Math.max(1, Math.round(CYCLES / 50));
  const samples = [];
  for (let cycle = 0; ; ) {
    samples.push({ cycle, ...(await page.evaluate(() => stress.sample(window.ann))), ...(await usage(cdp, origin)) });
    const s = samples.at(-1);
    if (samples.length % 5 === 1) console.error(`cycle ${cycle}: wasm ${mib(s.wasm_memory_bytes)}, JS heap ${mib(s.js_heap_bytes)}, IndexedDB ${s.idb_records} records ${s.idb_bytes} B, origin ${s.origin_usage_bytes} B`);
    if (cycle >= CYCLES) return samples;
    const n = Math.min(every, CYCLES - cycle);
    try {
      await page.evaluate(([from, n]) => stress.cycles(window.ann, from, n), [cycle, n]);
    } catch (e) {
      violation('cycles', e.message);
      return samples;
    }
    cycle += n;
  }
}

const mib = (b) => (b === null ? '-' : `${(b / 2 ** 20).toFixed(1)} MiB`);

const FLAT_RULE =
  'the highest sample of the last 30 % of the cycles is at most (1 + tolerance) × the highest of the 10-40 % ' +
  'window (the first 10 % are warm-up); highs, not single samples, because storage is a sawtooth';
/** Growth from the early window's high to the late window's high, for each figure that must stay flat. */
function flatness(samples) {
  const high = (from, to, key) => Math.max(...samples.filter((s) => s.cycle > from * CYCLES && s.cycle <= to * CYCLES).map((s) => s[key] ?? NaN));
  const out = {};
  for (const key of ['wasm_memory_bytes', 'js_heap_bytes', 'idb_bytes']) {
    const [early, late] = [high(0.1, 0.4, key), high(0.7, 1, key)];
    if (!Number.isFinite(early) || !Number.isFinite(late)) continue;
    out[key] = { early_high: early, late_high: late, growth: late / early - 1, flat: late <= early * (1 + TOLERANCE) };
  }
  return out;
}

async function newPage(context, origin, who) {
  const page = await context.newPage();
  page.setDefaultTimeout(0);
  page.on('console', (m) => (m.type() === 'error' || m.type() === 'warning') && violation(`${who} console.${m.type()}`, m.text()));
  page.on('pageerror', (e) => violation(`${who} pageerror`, e.message));
  page.on('crash', () => violation(who, 'the page crashed'));
  await page.goto(`${origin}/index.html`);
  await page.waitForFunction(() => window.ready === true);
  return page;
}

async function mixedLoad(context, origin, j) {
  const tabA = await newPage(context, origin, 'tab A');
  const tabB = await newPage(context, origin, 'tab B');
  const s = await tabA.evaluate(async (open) => {
    window.w = h.createWorker();
    window.wann = await window.w.open(open);
    const s = await window.wann.stats();
    window.dim = s.dim;
    return s;
  }, OPEN);
  if (!s.writable || s.lock !== 'held') violation('writer', `opened with writable ${s.writable}, lock ${s.lock}`);
  const t0 = Date.now();
  const timer = setTimeout(() => (stop.now = true), MINUTES * 60e3);
  const totals = () => ({ opens: 0, searches: 0, locked_as_expected: 0, wasm_memory_bytes: [] });
  const [tabReload, sameContext] = (live = [totals(), totals()]);
  const tick = setInterval(() => progress(t0, j), 10e3);
  await Promise.all([
    writer(tabA, j).finally(() => (stop.now = true)),
    reader('tab B (reloads)', tabB, j, tabReload, true),
    reader('tab A main thread', tabA, j, sameContext, false),
  ]);
  clearTimeout(timer);
  clearInterval(tick);
  const seconds = (Date.now() - t0) / 1e3;
  await tabA.evaluate(async () => {
    await window.wann.close();
    window.w.terminate();
  });
  await tabA.close();
  await tabB.close();
  return { seconds, dim: s.dim, reader: { tab_reload: tabReload, same_context: sameContext } };
}

/** The readers' totals while they run (the progress line). */
let live = [];
function progress(t0, j) {
  const r = live.reduce((a, t) => ({ opens: a.opens + t.opens, searches: a.searches + t.searches, locked: a.locked + t.locked_as_expected }), { opens: 0, searches: 0, locked: 0 });
  console.error(
    `${((Date.now() - t0) / 1e3).toFixed(0)} s: ${counts.mutations} mutations, ${j.present.size} classes, ` +
      `${r.opens} reopens, ${r.searches} searches, ${r.locked} LOCKED, ${violations.count} violations`,
  );
}

async function main() {
  const server = await serve({ '/pkg/': PKG, '/models/': MODELS, '/': join(HERE, 'pages') });
  const context = await launch([...BASE_ARGS, '--js-flags=--expose-gc', '--enable-precise-memory-info']);
  await context.addInitScript({ content: `{ const mulberry32 = ${mulberry32}, vkey = ${vkey}; (${inPage})(); }` });
  const j = new Journal();
  const git = (...a) => execFileSync('git', a, { cwd: ROOT, encoding: 'utf8' }).trim();
  const commit = `${git('rev-parse', '--short', 'HEAD')}${git('status', '--porcelain', '--untracked-files=no') ? ' (with uncommitted changes)' : ''}`;
  const report = { date: new Date().toISOString(), commit, chromium: '', package: PKG, minutes: MINUTES, batch: BATCH, seed: SEED };
  try {
    const mixed = await mixedLoad(context, server.origin, j);
    const page = await newPage(context, server.origin, 'final');
    const cdp = await context.newCDPSession(page);
    report.chromium = await cdp.send('Browser.getVersion').then((v) => v.product, () => execFileSync(CHROMIUM, ['--version'], { encoding: 'utf8' }).trim());
    const final = await finalCheck(page, j, 'final');
    const t0 = Date.now();
    const memory = await memoryPhase(page, cdp, server.origin);
    report.cycles_seconds = (Date.now() - t0) / 1e3;
    await page.reload();
    await page.waitForFunction(() => window.ready === true);
    const afterCycles = await finalCheck(page, j, 'after cycles');
    Object.assign(report, summary(mixed, j, final, afterCycles, memory));
  } finally {
    await context.close();
    await server.close();
  }
  return report;
}

function summary(mixed, j, final, afterCycles, memory) {
  const { tab_reload: a, same_context: b } = mixed.reader;
  const flat = flatness(memory);
  const lost = final.missing + final.wrong + afterCycles.missing + afterCycles.wrong;
  return {
    seconds: mixed.seconds,
    dim: mixed.dim,
    readers: 2,
    mutations: counts.mutations,
    by_kind: byKind,
    enrolled_classes: counts.enrolled_classes,
    maintain_did_work: counts.maintain_did_work,
    writer_wasm_memory_bytes: counts.writer_wasm,
    reader: { opens: a.opens + b.opens, searches: a.searches + b.searches, locked_as_expected: a.locked_as_expected + b.locked_as_expected, ...mixed.reader },
    violations: violations.count,
    first_violations: violations.first,
    cycles: CYCLES,
    memory,
    tolerance: TOLERANCE,
    memory_flat_rule: FLAT_RULE,
    memory_flat: flat,
    final_classes: final.classes,
    journal_classes: j.present.size,
    final_matches_journal: final.missing + final.extra + final.wrong === 0,
    final,
    after_cycles: afterCycles,
    lost_writes: lost,
    ok: violations.count === 0 && lost === 0 && Object.values(flat).every((f) => f.flat),
  };
}

const report = await main();
await mkdir(dirname(OUT), { recursive: true });
await writeFile(OUT, `${JSON.stringify(report, null, 1)}\n`);
console.log(
  `${report.mutations} mutations in ${report.seconds.toFixed(0)} s (${JSON.stringify(report.by_kind)}); ${report.reader.opens} reopens, ` +
    `${report.reader.searches} searches, ${report.reader.locked_as_expected} LOCKED; ${report.violations} violations; ` +
    `final ${report.final_classes} classes (journal ${report.journal_classes}), lost writes ${report.lost_writes}; ` +
    `memory ${JSON.stringify(report.memory_flat)} → ${OUT}`,
);
process.exit(report.ok ? 0 : 1);
