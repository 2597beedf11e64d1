// The package's API as each edge runtime runs it, with the model given as
// bytes: open, embed, enroll, search, export, import. Returns what it saw.
export async function check(MetricAnn, model, photos) {
  const ann = await MetricAnn.open({ model });
  const vector = await ann.embed(photos.coffee);
  for (const [label, bytes] of Object.entries(photos)) await ann.enroll(label, bytes);
  const top = (await ann.search(photos.chelsea, { k: 2 })).matches.map((m) => m.label);
  const exported = await ann.export({ format: 'bytes' });
  const copy = await MetricAnn.import(exported, { model });
  const bad = await ann.embed(new Uint8Array([1, 2, 3])).catch((e) => e.code);
  return {
    backend: (await ann.stats()).backend,
    dim: vector.length,
    norm: Math.hypot(...vector),
    classes: (await ann.classes()).length,
    top,
    exportedBytes: exported.length,
    copyClasses: (await copy.classes()).length,
    copyTop: (await copy.search(photos.coffee, { k: 1 })).matches[0].label,
    bad,
  };
}
