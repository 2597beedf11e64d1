// Small DOM helpers: element lookup, toasts, the banner, dialogs, formatting.

export const $ = (id) => document.getElementById(id);

/** Creates an element: h('li', { class: 'x', dataset: { a: 1 } }, child, 'text'). */
export function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(props)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'style') el.style.cssText = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined && c !== false) el.append(c);
  return el;
}

/** A short message at the bottom of the screen (announced to screen readers). */
export function toast(message, kind = 'info', ms = 3500) {
  const el = h('div', { class: `toast ${kind}` }, message);
  $('toasts').append(el);
  setTimeout(() => {
    el.classList.add('leaving');
    setTimeout(() => el.remove(), 300);
  }, ms);
}

/** The banner under the top bar: a persistent problem, with optional action buttons. */
export function banner(message, actions = []) {
  const box = $('banner');
  if (!message) {
    box.hidden = true;
    return;
  }
  $('banner-text').textContent = message;
  $('banner-actions').replaceChildren(
    ...actions.map(({ label, run, primary }) => h('button', { type: 'button', class: primary ? 'primary' : '', onclick: run }, label)),
  );
  box.hidden = false;
}

/** Asks a yes/no question in the confirm dialog; resolves to true on OK. */
export function confirmDialog({ title, text, ok = 'OK', danger = true }) {
  const dialog = $('confirm-dialog');
  $('confirm-title').textContent = title;
  $('confirm-text').textContent = text;
  const okButton = $('confirm-ok');
  okButton.textContent = ok;
  okButton.className = danger ? 'danger' : 'primary';
  dialog.returnValue = 'cancel';
  dialog.showModal();
  $('confirm-cancel').focus();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'ok'), { once: true });
  });
}

/** A readable message for an error from the package (err.code) or elsewhere. */
export function describe(err) {
  const msg = err?.message ?? String(err);
  switch (err?.code) {
    case 'QUOTA_EXCEEDED':
      return `The browser has no more room for the gallery: ${msg}`;
    case 'LOCKED':
      return 'The gallery is open in another tab or window: close it there to make changes here.';
    case 'MODEL_MISMATCH':
      return `That was made with another model: ${msg}`;
    case 'CORRUPT':
      return `Damaged data: ${msg}`;
    default:
      return msg;
  }
}

export function formatBytes(n) {
  if (n === null || n === undefined || !Number.isFinite(n)) return '?';
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1000 && i < units.length - 1) {
    n /= 1000;
    i++;
  }
  return `${n >= 100 || i === 0 ? Math.round(n) : n.toFixed(1)} ${units[i]}`;
}

export function plural(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
