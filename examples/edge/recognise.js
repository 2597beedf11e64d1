// The request handler the three edge examples share: POST an image (PNG, JPEG,
// WebP, GIF or BMP bytes) to /recognise and get the gallery's top-3 classes.
//   200 { matches: [{ label, score, metadata }], unknown }
//   400 { code: 'BAD_IMAGE' | 'BAD_INPUT', error }   the body is not an image
//   404 / 405                                          another path or method

/** Answers one request with `ann` (an open MetricAnn). */
export async function recognise(request, ann) {
  const { pathname } = new URL(request.url);
  if (pathname !== '/recognise') return json({ code: 'NOT_FOUND', error: 'POST an image to /recognise' }, 404);
  if (request.method !== 'POST') return json({ code: 'BAD_INPUT', error: 'use POST' }, 405);
  const image = new Uint8Array(await request.arrayBuffer());
  try {
    const { matches, unknown } = await ann.search(image, { k: 3 });
    return json({ matches: matches.map(({ label, score, metadata }) => ({ label, score, metadata })), unknown });
  } catch (e) {
    const status = e.code === 'BAD_IMAGE' || e.code === 'BAD_INPUT' ? 400 : 500;
    return json({ code: e.code ?? 'INTERNAL', error: e.message }, status);
  }
}

function json(body, status = 200) {
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
}
