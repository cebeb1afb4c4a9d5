// Runs an ONNX file in ONNX Runtime (onnxruntime-node, CPU) on a float32
// .npy batch and writes every graph output as OUTDIR/<output name>.npy.
// It is the runtime-nobody-here-wrote half of dghcore's export checks
// (docs/DESIGN.md, "ONNX export"); check.sh compares what it writes.
//
//   node tools/onnxrt/ort.mjs MODEL.onnx X.npy OUTDIR [--batch N]
//        [--optimization disabled|basic|extended|all] [--disable NAME;NAME...]
//
// --disable names graph optimizers to leave out (the session option
// optimization.disable_specified_optimizers), e.g. WeightBiasQuantization.

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import ort from "onnxruntime-node";

function usage(msg) {
  console.error(`ort.mjs: ${msg}\nusage: node ort.mjs MODEL.onnx X.npy OUTDIR [--batch N] [--optimization LEVEL] [--disable NAMES]`);
  process.exit(2);
}

// readNPY reads a little-endian float32 C-order .npy file.
function readNPY(path) {
  const buf = readFileSync(path);
  if (buf.toString("latin1", 0, 6) !== "\x93NUMPY") usage(`${path}: not a .npy file`);
  const major = buf[6];
  const hlen = major === 1 ? buf.readUInt16LE(8) : buf.readUInt32LE(8);
  const start = (major === 1 ? 10 : 12) + hlen;
  const header = buf.toString("latin1", major === 1 ? 10 : 12, start);
  if (!/'descr':\s*'<f4'/.test(header) || /'fortran_order':\s*True/.test(header)) {
    usage(`${path}: want little-endian float32 in C order, header ${header.trim()}`);
  }
  const shape = header.match(/'shape':\s*\(([^)]*)\)/)[1].split(",").filter((s) => s.trim() !== "").map(Number);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = buf.readFloatLE(start + 4 * i);
  return { shape, data };
}

function writeNPY(path, shape, data) {
  let header = `{'descr': '<f4', 'fortran_order': False, 'shape': (${shape.join(", ")}${shape.length === 1 ? "," : ""}), }`;
  const pad = 64 - ((10 + header.length + 1) % 64);
  header += " ".repeat(pad % 64) + "\n";
  const head = Buffer.alloc(10);
  head.write("\x93NUMPY", 0, "latin1");
  head[6] = 1;
  head[7] = 0;
  head.writeUInt16LE(header.length, 8);
  const body = Buffer.alloc(4 * data.length);
  for (let i = 0; i < data.length; i++) body.writeFloatLE(data[i], 4 * i);
  writeFileSync(path, Buffer.concat([head, Buffer.from(header, "latin1"), body]));
}

const args = process.argv.slice(2);
let batch = 256;
let level = "all";
let disable = "";
const pos = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === "--batch") batch = Number(args[++i]);
  else if (args[i] === "--optimization") level = args[++i];
  else if (args[i] === "--disable") disable = args[++i];
  else pos.push(args[i]);
}
if (pos.length !== 3 || !(batch >= 1)) usage("want a model, an input and an output folder");
const [modelPath, xPath, outDir] = pos;

const x = readNPY(xPath);
const session = await ort.InferenceSession.create(modelPath, {
  executionProviders: ["cpu"],
  graphOptimizationLevel: level,
  extra: disable ? { optimization: { disable_specified_optimizers: disable } } : {},
});
const input = session.inputNames[0];
const n = x.shape[0];
const per = x.data.length / n;
const outs = {};
for (let lo = 0; lo < n; lo += batch) {
  const hi = Math.min(lo + batch, n);
  const feed = new ort.Tensor("float32", x.data.subarray(lo * per, hi * per), [hi - lo, ...x.shape.slice(1)]);
  const res = await session.run({ [input]: feed });
  for (const name of session.outputNames) {
    const t = res[name];
    if (!outs[name]) outs[name] = { shape: [n, ...t.dims.slice(1)], data: new Float32Array(n * (t.data.length / (hi - lo))) };
    outs[name].data.set(t.data, lo * (t.data.length / (hi - lo)));
  }
}
mkdirSync(outDir, { recursive: true });
for (const [name, o] of Object.entries(outs)) writeNPY(join(outDir, `${name}.npy`), o.shape, o.data);
console.log(`ort.mjs: ${modelPath}: ${n} inputs, ${session.outputNames.length} outputs written to ${outDir} (onnxruntime-node ${ort.env.versions.node})`);
