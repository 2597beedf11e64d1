// Bun: recognise an uploaded photo with a gallery shipped beside the server.
//   bun server.js
//   curl --data-binary @photo.jpg localhost:3000/recognise
// Bun loads the package's Node entry, which reads the wasm and the model from disk.
import { MetricAnn } from 'metricann';
import { recognise } from '../recognise.js';

const gallery = await Bun.file(process.env.GALLERY ?? new URL('../gallery.metricann', import.meta.url)).bytes();
const ann = await MetricAnn.import(gallery, { model: 'objects' });
const server = Bun.serve({ port: Number(process.env.PORT ?? 3000), fetch: (request) => recognise(request, ann) });
console.log(`listening on http://127.0.0.1:${server.port}/recognise`);
