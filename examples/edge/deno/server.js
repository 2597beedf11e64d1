// Deno: recognise an uploaded photo with a gallery shipped beside the server.
//   deno run --allow-read --allow-env --allow-net server.js
//   curl --data-binary @photo.jpg localhost:8000/recognise
// Deno resolves 'metricann' from node_modules (deno.json: "nodeModulesDir": "manual")
// and loads the package's Node entry, which reads the wasm and the model from disk.
import { MetricAnn } from 'metricann';
import { recognise } from '../recognise.js';

const gallery = await Deno.readFile(Deno.env.get('GALLERY') ?? new URL('../gallery.metricann', import.meta.url));
const ann = await MetricAnn.import(gallery, { model: 'objects' });
const port = Number(Deno.env.get('PORT') ?? 8000);
Deno.serve({ port, onListen: () => console.log(`listening on http://127.0.0.1:${port}/recognise`) }, (request) =>
  recognise(request, ann),
);
