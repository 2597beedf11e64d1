// metricann for Cloudflare Workers (workerd). wrangler picks this entry through
// the "workerd" export condition. A Worker may neither compile WebAssembly from
// bytes at run time nor read files, so the wasm is imported as a module (wrangler
// compiles it when it bundles) and the model comes as bytes, typically a Data
// module bundled with the Worker:
//   import model from 'metricann/models/objects.bundle';
//   // wrangler.toml: [[rules]] type = "Data" globs = ["**/*.bundle"]
//   const ann = await MetricAnn.open({ model });
// or from a URL the Worker can fetch (R2, a public bucket). Galleries live in
// memory: ship one as a Data module too and open it with MetricAnn.import(bytes).
import wasm from './metricann_bg.wasm';
import { __configure } from './index.js';

__configure({
  wasm,
  loadModel: async (model) => {
    if (/^https?:/i.test(model)) return null; // fetch() handles it
    const err = new Error(
      `${model}: a Worker cannot read files; pass the model's bytes ` +
        `(import model from 'metricann/models/objects.bundle' with a Data rule for *.bundle) or an https: URL`,
    );
    err.name = 'MetricAnnError';
    err.code = 'BAD_INPUT';
    throw err;
  },
});

export * from './index.js';
export { default } from './index.js';
