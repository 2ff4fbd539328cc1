// bench/ort/run.mjs: times one ONNX file in ONNX Runtime (npm onnxruntime-node) and writes its
// outputs, for bench/ort.cpp, which runs the same file and inputs in edgeforge side by side.
//
//   node run.mjs SPEC.json
//
// SPEC.json: {"model": "m.onnx", "warmup": 20, "reps": 300,
//             "inputs": [{"name": "input", "dtype": "float32"|"int64", "shape": [1,1,28,28],
//                         "file": "input.bin"}],
//             "outputs_dir": "DIR"}
// Prints one JSON line on stdout: {"ms": [per-run milliseconds...], "outputs": [{"name", "shape",
// "file"}], "load_ms", "first_run_ms", "rss_before_mb", "peak_rss_mb"}; each output is written
// raw (float32, little endian) to outputs_dir/NAME.bin. load_ms is the session's creation (read,
// optimise, prepack), first_run_ms the first run; rss_before_mb the process's resident memory
// before the model was loaded (Node.js and ONNX Runtime's library), peak_rss_mb its peak.
// spec.threads intra-op threads (default 1), one inter-op thread, sequential execution, default
// graph optimisations ('all').
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const ortDir = process.env.EDGEFORGE_ORT_DIR;
if (!ortDir) {
  console.error('run.mjs: EDGEFORGE_ORT_DIR is not set (the folder holding node_modules/onnxruntime-node)');
  process.exit(2);
}
const ort = require(path.join(ortDir, 'node_modules', 'onnxruntime-node'));

const spec = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const rssBeforeMb = process.memoryUsage().rss / 1048576;
const loadStart = process.hrtime.bigint();
const session = await ort.InferenceSession.create(spec.model, {
  intraOpNumThreads: spec.threads || 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
});
const loadMs = Number(process.hrtime.bigint() - loadStart) / 1e6;
const feeds = {};
for (const inp of spec.inputs) {
  const buf = fs.readFileSync(inp.file);
  const bytes = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength);
  let data;
  if (inp.dtype === 'float32') data = new Float32Array(bytes);
  else if (inp.dtype === 'int64') data = new BigInt64Array(bytes);
  else throw new Error(`run.mjs: input '${inp.name}': unsupported dtype '${inp.dtype}'`);
  feeds[inp.name] = new ort.Tensor(inp.dtype, data, inp.shape);
}
const firstStart = process.hrtime.bigint();
let results = await session.run(feeds);
const firstRunMs = Number(process.hrtime.bigint() - firstStart) / 1e6;
for (let i = 0; i < spec.warmup; ++i) results = await session.run(feeds);
const ms = [];
for (let i = 0; i < spec.reps; ++i) {
  const t0 = process.hrtime.bigint();
  results = await session.run(feeds);
  ms.push(Number(process.hrtime.bigint() - t0) / 1e6);
}
const outputs = [];
for (const name of session.outputNames) {
  const t = results[name];
  if (t.type !== 'float32') throw new Error(`run.mjs: output '${name}' is ${t.type}, expected float32`);
  const file = path.join(spec.outputs_dir, `${name}.bin`);
  fs.writeFileSync(file, Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  outputs.push({ name, shape: t.dims, file });
}
// VmHWM, not resourceUsage().maxRSS, which Linux carries over from the parent across execve.
const hwm = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync('/proc/self/status', 'utf8'));
const peakRssMb = hwm ? Number(hwm[1]) / 1024 : 0;
console.log(JSON.stringify({ ms, outputs, load_ms: loadMs, first_run_ms: firstRunMs,
                             rss_before_mb: rssBeforeMb, peak_rss_mb: peakRssMb }));
