// Goldens for bnlab's CUDA device: recorded here on the fake device (host memory, bnlab's CPU
// kernels, whose training runs equal wasm's), replayed on the GPU by scripts/gpu-check.sh.
//   --write DIR   every Device method at fixed shapes (scripts/gpu/cases.ts: inputs and outputs
//                 under DIR/ops, listed in DIR/cases.json) and the tiny training runs of
//                 scripts/kernel-census.ts (DIR/runs: metrics.csv, final parameters, EMA statistics)
//   --check DIR   replays each case on a device: one line per case, exit 1 on any failure
//   --step DIR    replays the training runs on a device and compares metrics.csv cell by cell
// With --fake the device is the fake one again and every tolerance is 0: it must reproduce its
// own goldens bit for bit (test/gpu-golden.test.ts). Tolerances and why: scripts/gpu/ops.ts, runs.ts.
import '@tensorflow/tfjs'; // gradients and chained ops for the training runs
import * as tf from '@tensorflow/tfjs-core';
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { FakeDevice } from '../src/backend/cuda/fake-device.js';
import { DEVICE_FLAGS, DEVICE_HELP, deviceOptions, openDevice } from './gpu/device.js';
import { checkOps, TOLERANCES, writeOps, type CaseResult } from './gpu/ops.js';
import { checkRuns, RUN_TOLERANCES, writeRuns } from './gpu/runs.js';

const USAGE = `usage: gpu-golden.ts --write DIR | --check DIR | --step DIR  [device flags]
${DEVICE_HELP}`;

tf.env().set('PROD', true); // tfjs' "use the node backend" notes are not this script's output
// `... | head`: stop printing, keep the exit status
process.stdout.on('error', (e: NodeJS.ErrnoException) => void (e.code === 'EPIPE' ? (process.stdout.write = () => true) : process.exit(1)));

const fmt = (x: number) => (Number.isNaN(x) ? '-' : x === Infinity ? 'inf' : x === 0 ? '0' : x.toExponential(1));

async function main(): Promise<number> {
  let v;
  try {
    v = parseArgs({ options: { write: { type: 'string' }, check: { type: 'string' }, step: { type: 'string' }, help: { type: 'boolean' }, ...DEVICE_FLAGS } }).values;
  } catch (e) {
    console.error(`gpu-golden: ${(e as Error).message}\n${USAGE}`);
    return 2;
  }
  const modes = (['write', 'check', 'step'] as const).filter((m) => v[m] !== undefined);
  if (v.help || modes.length !== 1) {
    console.error(USAGE);
    return v.help ? 0 : 2;
  }
  const dir = v[modes[0]]!;

  if (modes[0] === 'write') {
    const dev = new FakeDevice();
    rmSync(dir, { recursive: true, force: true });
    const ops = writeOps(dir, dev);
    const runs = await writeRuns(dir, dev);
    console.log(`wrote ${ops.cases} op cases (${(ops.bytes / 2 ** 20).toFixed(2)} MiB) and ${runs} training runs to ${dir}`);
    return 0;
  }

  const o = deviceOptions(v);
  const { device, label } = await openDevice(o);
  const regime = o.fake ? 'exact' : o.tf32 ? 'on' : 'off';
  const how = o.fake ? 'fake device, exact' : `TF32 ${o.tf32 ? 'on' : 'off'}`;
  console.log(`device: ${label}`);
  if (modes[0] === 'check') {
    const t = o.fake ? { gemm: 0, float: 0, exact: 0 } : TOLERANCES[o.tf32 ? 'on' : 'off'];
    console.log(`tolerances (max |diff| / max |golden|): conv/matmul ${t.gemm}, other float ops ${t.float}, data movement and int/bool outputs exact${o.fake ? ' (fake device: all exact)' : ''}`);
    const line = (r: CaseResult) =>
      console.log(`${r.pass ? 'PASS' : 'FAIL'}  ${r.c.id.padEnd(36)} ${r.c.op.padEnd(14)} err ${fmt(r.err).padStart(7)}  tol ${fmt(r.tol).padStart(5)}  ${r.c.shape}${r.pass || !r.note ? '' : `  -- ${r.note}`}`);
    const res = checkOps(dir, device, o.tf32, o.fake, line);
    const failed = res.filter((r) => !r.pass).length;
    console.log(`ops: ${res.length} cases, ${res.length - failed} PASS, ${failed} FAIL (${how})`);
    return failed ? 1 : 0;
  }
  const res = await checkRuns(dir, device, RUN_TOLERANCES[regime]);
  for (const r of res) for (const l of r.lines) console.log(l);
  const failed = res.filter((r) => !r.pass).length;
  console.log(`runs: ${res.length} runs, ${res.length - failed} PASS, ${failed} FAIL (${how})`);
  return failed ? 1 : 0;
}

process.exitCode = await main().catch((e: Error) => {
  console.error(`gpu-golden: ${e.message}`);
  return 1;
});
