// Recording and replaying the Device cases of ./cases.ts: DIR/cases.json lists each call (method,
// arguments, buffers) and DIR/ops/*.bin hold its inputs and golden outputs, raw little-endian.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { BYTES, type Device, type DType } from '../../src/backend/cuda/device.js';
import { allCases, dtypeOf, type Arg, type CaseDef, type Data, type TolClass } from './cases.js';

export interface BufRecord {
  dtype: DType;
  n: number;
  /** file under ops/ uploaded before the call; absent: filled with a sentinel */
  input?: string;
  /** file under ops/ with the expected contents after the call */
  golden?: string;
}
export interface CaseRecord {
  id: string;
  op: string;
  shape: string;
  tol: TolClass;
  args: Arg[];
  bufs: Record<string, BufRecord>;
}

/**
 * Relative to the output's largest finite magnitude. TF32 off: cuDNN and cuBLAS sum products in
 * another order than oneDNN (split K, tiles, Winograd), and float32 summation error grows with the
 * length of the sum (up to 3136 products here): 1e-4 leaves room for that and still catches a
 * wrong index or a missed tile. Every other float op sums short runs or none: 1e-5. TF32 on: the
 * inputs of each product are rounded to a 10-bit mantissa (~1e-3 relative per product), the errors
 * add up over the sum: 5e-3. Data movement (slice, transpose, copy, fill, cast, oneHot) and integer
 * or bool outputs must be exact.
 */
export const TOLERANCES: Record<'off' | 'on', Record<TolClass, number>> = {
  off: { gemm: 1e-4, float: 1e-5, exact: 0 },
  on: { gemm: 5e-3, float: 1e-5, exact: 0 },
};

// Outputs start as a value no kernel writes, so an element a kernel skipped cannot match.
const SENTINEL: Record<DType, number> = { float32: NaN, int32: 0x7eadbeef, bool: 0xa5 };
const make = (dtype: DType, n: number): Data => (dtype === 'float32' ? new Float32Array(n) : dtype === 'int32' ? new Int32Array(n) : new Uint8Array(n));
const asData = (bytes: Uint8Array, dtype: DType): Data => {
  const b = new Uint8Array(bytes).buffer; // a copy: a Buffer may be a view of a shared pool
  return dtype === 'float32' ? new Float32Array(b) : dtype === 'int32' ? new Int32Array(b) : new Uint8Array(b);
};
const bytesOf = (d: Data) => new Uint8Array(d.buffer, d.byteOffset, d.byteLength);

/** One call on `dev`: buffers allocated, inputs uploaded, outputs read back, everything freed. */
export function execute(dev: Device, op: string, args: Arg[], bufs: Record<string, { dtype: DType; n: number }>, inputs: Record<string, Data>, outputs: string[]): Record<string, Data> {
  const ptr = new Map<string, number>();
  try {
    for (const [name, b] of Object.entries(bufs)) {
      const p = dev.alloc(Math.max(1, b.n * BYTES[b.dtype]));
      ptr.set(name, p);
      dev.upload(p, inputs[name] ?? make(b.dtype, b.n).fill(SENTINEL[b.dtype]));
    }
    const real = args.map((a) => {
      if (a === null || typeof a !== 'object' || Array.isArray(a)) return a;
      if ('buf' in a) return a.buf === null ? 0 : ptr.get(a.buf)!;
      return 'i32' in a ? Int32Array.from(a.i32) : Float64Array.from(a.f64);
    });
    const fn = (dev as unknown as Record<string, (...a: unknown[]) => void>)[op];
    if (typeof fn !== 'function') throw new Error(`the device has no method ${op}`);
    fn.apply(dev, real);
    dev.sync();
    return Object.fromEntries(outputs.map((o) => [o, asData(dev.downloadSync(ptr.get(o)!, bufs[o].n * BYTES[bufs[o].dtype]), bufs[o].dtype)]));
  } finally {
    for (const p of ptr.values()) dev.free(p);
  }
}

/** Runs every case on `dev` (the fake device) and stores inputs, goldens and cases.json. */
export function writeOps(dir: string, dev: Device): { cases: number; bytes: number } {
  mkdirSync(join(dir, 'ops'), { recursive: true });
  const stored = new Map<Data, string>(); // the three conv kinds share x, w and dy: stored once
  let bytes = 0;
  const put = (file: string, d: Data) => {
    writeFileSync(join(dir, 'ops', file), bytesOf(d));
    bytes += d.byteLength;
    return file;
  };
  const records: CaseRecord[] = allCases().map((c: CaseDef) => {
    const bufs: Record<string, BufRecord> = {};
    for (const [name, d] of Object.entries(c.inputs)) {
      if (!stored.has(d)) stored.set(d, put(`${c.id}.${name}.bin`, d));
      bufs[name] = { dtype: dtypeOf(d), n: d.length, input: stored.get(d) };
    }
    for (const [name, o] of Object.entries(c.outputs)) bufs[name] = { ...bufs[name], ...o };
    const got = execute(dev, c.op, c.args, bufs, c.inputs, Object.keys(c.outputs));
    for (const [name, d] of Object.entries(got)) bufs[name].golden = put(`${c.id}.${name}.golden.bin`, d);
    return { id: c.id, op: c.op, shape: c.shape, tol: c.tol, args: c.args, bufs };
  });
  writeFileSync(join(dir, 'cases.json'), JSON.stringify({ format: 1, written: new Date().toISOString(), cases: records }, null, 1) + '\n');
  return { cases: records.length, bytes };
}

export function readCases(dir: string): CaseRecord[] {
  return (JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8')) as { cases: CaseRecord[] }).cases;
}

function readData(dir: string, file: string, dtype: DType, n: number): Data {
  const d = asData(readFileSync(join(dir, 'ops', file)), dtype);
  if (d.length !== n) throw new Error(`${file}: ${d.length} elements, cases.json says ${n}`);
  return d;
}

/**
 * max |got - gold| / max |gold| over the golden's finite elements; NaN and infinities must match
 * exactly (NaN with NaN, an infinity with the same infinity), else the error is Infinity.
 */
export function compare(gold: Data, got: Data): { err: number; note: string } {
  if (gold.length !== got.length) return { err: Infinity, note: `${got.length} elements, expected ${gold.length}` };
  let diff = 0, scale = 0, bad = -1, worst = 0;
  for (let i = 0; i < gold.length; i++) {
    const g = gold[i], v = got[i];
    if (!Number.isFinite(g)) {
      if (!(Number.isNaN(g) ? Number.isNaN(v) : v === g) && bad < 0) bad = i;
      continue;
    }
    if (!Number.isFinite(v)) {
      if (bad < 0) bad = i;
      continue;
    }
    scale = Math.max(scale, Math.abs(g));
    if (Math.abs(v - g) > diff) (diff = Math.abs(v - g)), (worst = i);
  }
  if (bad >= 0) return { err: Infinity, note: `element ${bad}: ${got[bad]}, expected ${gold[bad]}` };
  return { err: diff / (scale || 1), note: diff > 0 ? `worst element ${worst}: ${got[worst]}, expected ${gold[worst]}` : '' };
}

export interface CaseResult {
  c: CaseRecord;
  err: number;
  tol: number;
  pass: boolean;
  note: string;
}

/** Replays every case on `dev`; exact: tolerance 0 everywhere (the fake against its own goldens). */
export function checkOps(dir: string, dev: Device, tf32: boolean, exact: boolean, each: (r: CaseResult) => void): CaseResult[] {
  return readCases(dir).map((c) => {
    let r: CaseResult;
    try {
      const inputs: Record<string, Data> = {};
      for (const [name, b] of Object.entries(c.bufs)) if (b.input) inputs[name] = readData(dir, b.input, b.dtype, b.n);
      const outs = Object.keys(c.bufs).filter((k) => c.bufs[k].golden);
      const got = execute(dev, c.op, c.args, c.bufs, inputs, outs);
      // the case shows the output closest to (or furthest past) its tolerance
      r = { c, err: 0, tol: 0, pass: true, note: '' };
      let worst = -1;
      for (const o of outs) {
        const b = c.bufs[o];
        const tol = exact || b.dtype !== 'float32' ? 0 : TOLERANCES[tf32 ? 'on' : 'off'][c.tol];
        const e = compare(readData(dir, b.golden!, b.dtype, b.n), got[o]);
        const ratio = e.err === 0 ? 0 : tol === 0 ? Infinity : e.err / tol;
        if (ratio > worst) (worst = ratio), (r = { c, err: e.err, tol, pass: r.pass, note: e.note ? `${o}: ${e.note}` : '' });
        r.pass &&= e.err <= tol;
      }
    } catch (e) {
      r = { c, err: NaN, tol: 0, pass: false, note: `error: ${(e as Error).message.split('\n')[0]}` };
    }
    each(r);
    return r;
  });
}
