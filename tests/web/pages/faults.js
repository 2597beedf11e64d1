// Faults injected into the page's IndexedDB writes, for tests/web/faults.test.mjs.
//
// Every request made on an object store of a read-write transaction is a step
// (the manifest check `get`, `clear`, each `put` and `delete`), counted from
// `arm()` on, whatever transaction it belongs to. At the planned step:
// - 'throw': the request throws, as the browser does for a value it cannot store;
// - 'throw-on': that request and every later one throws (a disk that stays broken);
// - 'quota-on': the same with the browser's QuotaExceededError (the site's quota
//   used up; CDP's Storage.overrideQuotaForOrigin does not reach IndexedDB in
//   the Chromium these tests run, so a real quota cannot be set from a test);
// - 'abort': the request is made, then its transaction is aborted (a failing
//   disk, the browser giving up);
// - 'hang': the request is made and the transaction is kept from committing
//   (a chain of reads), so that the test can close or crash the tab with the
//   transaction in flight.
// The package calls these methods through the prototypes (wasm-bindgen glue
// looks them up at each call), so patching them reaches its real writes.
const proto = IDBObjectStore.prototype;
const ORIGINAL = { get: proto.get, put: proto.put, delete: proto.delete, clear: proto.clear };
let plan = null;

function describe(method, args) {
  if (method === 'put') return `put ${args[1]}`;
  if (method === 'delete') return `delete ${args[0]}`;
  return `${method}${method === 'get' ? ` ${args[0]}` : ''}`;
}

function keepAlive(store) {
  const again = () => {
    ORIGINAL.get.call(store, '\u0000keep-alive').onsuccess = again;
  };
  again();
}

for (const [method, original] of Object.entries(ORIGINAL)) {
  proto[method] = function (...args) {
    if (!plan || this.transaction.mode !== 'readwrite') return original.apply(this, args);
    const step = plan.steps.length;
    plan.steps.push(describe(method, args));
    const lasting = plan.kind === 'throw-on' || plan.kind === 'quota-on';
    if (step !== plan.at && !(lasting && step > plan.at && plan.at >= 0)) return original.apply(this, args);
    plan.hit = true;
    if (plan.kind === 'quota-on') throw new DOMException('an injected full quota', 'QuotaExceededError');
    if (plan.kind === 'throw' || plan.kind === 'throw-on') throw new DOMException('an injected write failure', 'UnknownError');
    const request = original.apply(this, args);
    if (plan.kind === 'abort') this.transaction.abort();
    if (plan.kind === 'hang') keepAlive(this);
    return request;
  };
}

/** Injects `kind` at step `at` (from 0) of the writes from now on; `at` of -1 only counts. */
export function arm(at, kind) {
  plan = { at, kind, steps: [], hit: false };
}

/** Whether the planned step was reached. */
export function hit() {
  return plan?.hit ?? false;
}

/** Stops injecting; the steps taken since `arm()` and whether the fault was injected. */
export function disarm() {
  const taken = plan;
  plan = null;
  return taken && { steps: taken.steps, hit: taken.hit };
}
