import { MetricAnn } from 'metricann';
import { check } from './check.js';

const read = (path) => Deno.readFile(new URL(path, import.meta.url));
const model = await read('../node_modules/metricann/models/objects.bundle');
const photos = { coffee: await read('./coffee.png'), chelsea: await read('./chelsea.png') };
console.log(JSON.stringify(await check(MetricAnn, model, photos)));
