// Faults at every IndexedDB write of every mutation, in headless Chromium: the
// k-th request of the mutation's transactions throws, or its transaction is
// aborted there, or the tab is closed or crashes with the transaction in
// flight; then the gallery must open as it was before the mutation or as it is
// after it (the mutation's own result says which), never a mix, and searches
// must find what they should. The same with the quota filled mid-merge.
// Needs the test package and bundles (make web-pkg web-model).
import test from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { HERE, PKG, MODELS, FIXTURES, serve, listFixture, launch, openPage, BASE_ARGS } from './lib.mjs';

const FIXTURE = Object.entries(await listFixture()).slice(0, 6);

/** With METRICANN_FAULTS_TRACE set, says where the test is. */
function trace(what) {
  if (process.env.METRICANN_FAULTS_TRACE) console.log(`# ${what}`);
}

/** Loads the page modules the points use. */
async function prepare(page) {
  await page.evaluate(async () => {
    window.m = await import('/mutations.js');
    window.f = await import('/faults.js');
  });
  return page;
}

/** The mutation `name` without faults: its steps and the gallery before and after. */
function dryRun(page, name, bases) {
  return page.evaluate(
    async ([name, bases, fixture]) => {
      const M = m.MUTATIONS[name];
      let ann = await m.startFrom(bases[M.replaces ?? M.base].file, `dry-${name}`);
      const before = await m.snapshot(ann, bases.dim, m.PROBES);
      f.arm(-1, 'count');
      if (M.replaces) {
        await ann.close();
        ann = await h.MetricAnn.import(m.fromBase64(bases[M.base].file), { ...m.OPEN, gallery: `dry-${name}`, overwrite: true });
      } else await M.run({ ann, dim: bases.dim, fixture });
      await m.maintainAll(ann);
      const { steps } = f.disarm();
      const after = await m.snapshot(ann, bases.dim, m.PROBES);
      await ann.close();
      await h.MetricAnn.deleteGallery(`dry-${name}`);
      return { steps, before, after };
    },
    [name, bases, FIXTURE],
  );
}

/**
 * One fault (kind 'throw' or 'abort') at step `at` of mutation `name`: what
 * the mutation reported, and the gallery as the same instance and a fresh open
 * see it afterwards.
 */
function faultPoint(page, name, kind, at, bases) {
  return page.evaluate(
    async ([name, kind, at, bases, fixture]) => {
      const M = m.MUTATIONS[name];
      const gallery = `fault-${name}-${kind}-${at}`;
      let ann = await m.startFrom(bases[M.replaces ?? M.base].file, gallery);
      if (M.replaces) await ann.close();
      f.arm(at, kind);
      let op;
      if (M.replaces) {
        op = await h.attempt(async () => {
          ann = await h.MetricAnn.import(m.fromBase64(bases[M.base].file), { ...m.OPEN, gallery, overwrite: true });
        });
        if (!op.ok) ann = await h.MetricAnn.open({ ...m.OPEN, gallery });
      } else op = await h.attempt(() => M.run({ ann, dim: bases.dim, fixture }));
      // The maintenance the mutation scheduled (a fault there is only logged).
      await h.attempt(() => m.maintainAll(ann));
      const { steps, hit } = f.disarm();
      // What an application does next: maintenance again, now without a fault.
      await m.maintainAll(ann);
      const live = await m.snapshot(ann, bases.dim, m.PROBES);
      await ann.close();
      const reopened = await h.MetricAnn.open({ ...m.OPEN, gallery });
      const stored = await m.snapshot(reopened, bases.dim, m.PROBES);
      await reopened.close();
      await h.MetricAnn.deleteGallery(gallery);
      return { ok: op.ok, error: op.error, hit, steps: steps.length, live, stored };
    },
    [name, kind, at, bases, FIXTURE],
  );
}

/**
 * The tab closes ('close') or its renderer crashes ('crash') while the
 * transaction that makes step `at` is in flight; a new tab then opens the
 * gallery. Resolves to that tab's snapshot.
 */
async function tabPoint(context, origin, name, how, at, bases) {
  const gallery = `tab-${name}-${how}-${at}`;
  const page = await prepare(await openPage(context, origin, `${name}-${how}`));
  await page.evaluate(
    async ([name, at, bases, gallery]) => {
      const M = m.MUTATIONS[name];
      window.ann = await m.startFrom(bases[M.replaces ?? M.base].file, gallery);
      if (M.replaces) await window.ann.close();
      f.arm(at, 'hang');
    },
    [name, at, bases, gallery],
  );
  const running = page
    .evaluate(
      async ([name, bases, fixture, gallery]) => {
        const M = m.MUTATIONS[name];
        if (M.replaces) window.ann = await h.MetricAnn.import(m.fromBase64(bases[M.base].file), { ...m.OPEN, gallery, overwrite: true });
        else await M.run({ ann: window.ann, dim: bases.dim, fixture });
        await m.maintainAll(window.ann);
      },
      [name, bases, FIXTURE, gallery],
    )
    .catch(() => {});
  trace(`${name}: tab ${how} at ${at}: armed`);
  await page.waitForFunction(() => f.hit(), null, { polling: 20, timeout: 60_000 });
  trace(`${name}: tab ${how} at ${at}: the transaction is in flight`);
  await new Promise((ok) => setTimeout(ok, 100));
  if (how === 'crash') {
    const cdp = await context.newCDPSession(page);
    const crashed = page.waitForEvent('crash', { timeout: 30_000 });
    // The renderer dies before it can answer.
    cdp.send('Page.crash').catch(() => {});
    await crashed;
  }
  await page.close({ runBeforeUnload: false });
  // An evaluation in a crashed page may never settle: `running` is left to itself.
  void running;
  trace(`${name}: tab ${how} at ${at}: closed`);
  const next = await prepare(await openPage(context, origin, `${name}-${how}-after`));
  const seen = await next.evaluate(
    async ([gallery, bases]) => {
      const ann = await h.MetricAnn.open({ ...m.OPEN, gallery });
      const stats = await ann.stats();
      await m.maintainAll(ann);
      const snap = await m.snapshot(ann, bases.dim, m.PROBES);
      await ann.close();
      await h.MetricAnn.deleteGallery(gallery);
      return { snap, writable: stats.writable };
    },
    [gallery, bases],
  );
  await next.close();
  return seen;
}

/** The indices of the steps that start a transaction (its manifest check). */
function transactionStarts(steps) {
  return steps.flatMap((s, i) => (s === 'get manifest' || (i === 0 && !s.startsWith('get')) ? [i] : []));
}

/** A server, a Chromium closed after `t`, and a page that made the starting galleries. */
async function start(t, tag) {
  const server = await serve({ '/pkg/': PKG, '/models/': MODELS, '/fixtures/': FIXTURES, '/': join(HERE, 'pages') });
  t.after(() => server.close());
  const context = await launch(BASE_ARGS);
  t.after(() => context.close());
  const page = await prepare(await openPage(context, server.origin, tag));
  const bases = await page.evaluate((fixture) => m.makeBases(fixture), FIXTURE);
  return { server, context, page, bases };
}

test('faults at every IndexedDB write of every mutation', async (t) => {
  const { server, context, page, bases } = await start(t, 'faults');
  console.log(`# bases: vectors ${bases.vectors.classes} classes in ${bases.vectors.segments} segments, images ${bases.images.classes} classes`);
  const totals = { points: 0, failed: 0, succeeded: 0, tabPoints: 0, tabBefore: 0, tabAfter: 0 };

  // METRICANN_FAULTS_ONLY=enroll,remove runs those mutations alone.
  const only = process.env.METRICANN_FAULTS_ONLY?.split(',');
  for (const name of await page.evaluate(() => Object.keys(m.MUTATIONS))) {
    if (only && !only.includes(name)) continue;
    await t.test(name, async () => {
      const dry = await dryRun(page, name, bases);
      const same = await page.evaluate((name) => m.MUTATIONS[name].same === true, name);
      if (!same) assert.notDeepEqual(dry.after, dry.before, `${name} changes the gallery`);
      assert.ok(dry.steps.length > 0, `${name} writes`);
      console.log(`# ${name}: ${dry.steps.length} steps: ${dry.steps.join(', ')}`);
      for (const kind of ['throw', 'abort']) {
        for (let at = 0; at < dry.steps.length; at++) {
          trace(`${name}: ${kind} at ${at}`);
          const r = await faultPoint(page, name, kind, at, bases);
          const where = `${name}, ${kind} at step ${at} (${dry.steps[at]})`;
          assert.ok(r.hit, `${where}: the fault was injected`);
          const expected = r.ok ? dry.after : dry.before;
          assert.deepEqual(r.stored, expected, `${where}: the reopened gallery is the state ${r.ok ? 'after' : 'before'}`);
          assert.deepEqual(r.live, expected, `${where}: the open instance agrees with what is stored`);
          if (!r.ok) assert.ok(['IO', 'QUOTA_EXCEEDED', 'LOCKED'].includes(r.error.code), `${where}: ${JSON.stringify(r.error)}`);
          totals.points++;
          totals[r.ok ? 'succeeded' : 'failed']++;
        }
      }
      for (const at of transactionStarts(dry.steps)) {
        for (const how of ['close', 'crash']) {
          const seen = await tabPoint(context, server.origin, name, how, at, bases);
          const state = [['before', dry.before], ['after', dry.after]].find(([, s]) => JSON.stringify(s) === JSON.stringify(seen.snap));
          assert.ok(state, `${name}, tab ${how} in the transaction of step ${at}: the gallery is neither before nor after: ${JSON.stringify(seen.snap)}`);
          assert.equal(seen.writable, true, 'the closed tab released the write lock');
          totals.tabPoints++;
          totals[state[0] === 'before' ? 'tabBefore' : 'tabAfter']++;
        }
      }
    });
  }
  console.log(`# faults: ${totals.points} injected (${totals.failed} failed the mutation, ${totals.succeeded} hit only its maintenance); tab closed/crashed ${totals.tabPoints} times (${totals.tabBefore} before, ${totals.tabAfter} after); 0 mixed states`);
});

test('the quota used up at each step of a merge: QUOTA_EXCEEDED, and nothing changes until there is room', async (t) => {
  const { page, bases } = await start(t, 'quota');
  // A gallery with a merge to do: its growing segment filled past capacity, the
  // merge into a graph failed (a broken disk), so the next maintain() merges.
  const pending = await page.evaluate(async (bases) => {
    const ann = await m.startFrom(bases.vectors.file, 'quota-merge');
    await m.MUTATIONS.merge.run({ ann, dim: bases.dim });
    f.arm(0, 'throw-on');
    await h.attempt(() => ann.maintain());
    // The background maintenance the enrollment scheduled fails as well.
    await new Promise((ok) => setTimeout(ok, 100));
    await ann.stats();
    f.disarm();
    const stats = await ann.stats();
    const file = await ann.export({ format: 'bytes' });
    await ann.close();
    await h.MetricAnn.deleteGallery('quota-merge');
    return { needsMaintenance: stats.needsMaintenance, file: m.toBase64(file) };
  }, bases);
  assert.equal(pending.needsMaintenance, true, 'a merge is pending');

  // The merge without faults: its steps and the gallery after it.
  const dry = await page.evaluate(async ([file, bases]) => {
    const ann = await m.startPending(file, 'quota-dry');
    const before = await m.snapshot(ann, bases.dim, m.PROBES);
    f.arm(-1, 'count');
    await m.maintainAll(ann);
    const { steps } = f.disarm();
    const after = await m.snapshot(ann, bases.dim, m.PROBES);
    await ann.close();
    await h.MetricAnn.deleteGallery('quota-dry');
    return { steps, before, after };
  }, [pending.file, bases]);
  console.log(`# quota: the merge takes ${dry.steps.length} steps: ${dry.steps.join(', ')}`);
  assert.notDeepEqual(dry.after.segments, dry.before.segments, 'the merge rewrites the segments');
  assert.deepEqual({ ...dry.after, segments: null }, { ...dry.before, segments: null }, 'and changes nothing a user sees');

  for (let at = 0; at < dry.steps.length; at++) {
    const r = await page.evaluate(async ([file, bases, at]) => {
      const gallery = `quota-${at}`;
      const ann = await m.startPending(file, gallery);
      f.arm(at, 'quota-on');
      const merge = await h.attempt(() => ann.maintain());
      const live = await m.snapshot(ann, bases.dim, m.PROBES);
      f.disarm();
      await ann.close();
      const reopened = await h.MetricAnn.open({ ...m.OPEN, gallery });
      const stored = await m.snapshot(reopened, bases.dim, m.PROBES);
      const retried = await h.attempt(() => m.maintainAll(reopened));
      const merged = await m.snapshot(reopened, bases.dim, m.PROBES);
      await reopened.close();
      await h.MetricAnn.deleteGallery(gallery);
      return { merge, live, stored, retried, merged };
    }, [pending.file, bases, at]);
    const where = `quota used up at step ${at} (${dry.steps[at]}) of the merge`;
    assert.equal(r.merge.ok, false, `${where}: the merge was refused`);
    assert.equal(r.merge.error.code, 'QUOTA_EXCEEDED', `${where}: ${JSON.stringify(r.merge)}`);
    assert.deepEqual(r.live, dry.before, `${where}: the open instance is as before`);
    assert.deepEqual(r.stored, dry.before, `${where}: the stored gallery is as before`);
    assert.ok(r.retried.ok, `${where}: with room again the merge succeeds: ${JSON.stringify(r.retried)}`);
    assert.deepEqual(r.merged, dry.after, `${where}: and gives the gallery the merge gives`);
  }
});
