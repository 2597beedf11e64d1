import { MetricAnn } from 'metricann';
import model from 'metricann/models/objects.bundle';
import coffee from './coffee.png';
import chelsea from './chelsea.png';
import { check } from './check.js';

export default {
  async fetch() {
    const photos = { coffee: new Uint8Array(coffee), chelsea: new Uint8Array(chelsea) };
    return Response.json(await check(MetricAnn, model, photos));
  },
};
