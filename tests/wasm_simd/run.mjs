// Loads the two builds of check.rs (scalar-only and simd128) and checks them.
import { readFileSync } from "node:fs";
import assert from "node:assert/strict";

const dir = process.argv[2];
const results = {};
for (const [name, wantSimd] of [["plain", 0], ["simd128", 1]]) {
  const { instance } = await WebAssembly.instantiate(readFileSync(`${dir}/${name}.wasm`));
  const e = instance.exports;
  assert.equal(e.simd128(), wantSimd, `${name}: kernel`);
  assert.equal(e.mismatches(), 0, `${name}: dot differs from the reference`);
  const time = (which) => {
    e.scan(which, 10000, 128, 1); // warm up
    const t = performance.now();
    e.scan(which, 10000, 128, 20);
    return (performance.now() - t) / (20 * 10000);
  };
  results[name] = { dot_ns: +(time(0) * 1e6).toFixed(1), scalar_ns: +(time(1) * 1e6).toFixed(1) };
}
console.log(`wasm dot kernels agree with the reference; ns per 128-d dot: ${JSON.stringify(results)}`);
