// A Cloudflare Worker that recognises an uploaded photo: the objects model and a
// gallery exported elsewhere (MetricAnn#export, natively or in a browser) are
// bundled with the Worker as Data modules (wrangler.toml's rules).
//   npx wrangler dev          then: curl --data-binary @photo.jpg localhost:8787/recognise
import { MetricAnn } from 'metricann';
import model from 'metricann/models/objects.bundle';
import gallery from '../gallery.metricann';
import { recognise } from '../recognise.js';

// Opened on the first request and kept for the life of the isolate.
let ann = null;

export default {
  async fetch(request) {
    ann ??= MetricAnn.import(gallery, { model }).catch((e) => {
      ann = null;
      throw e;
    });
    return recognise(request, await ann);
  },
};
