// IDX files (the MNIST/Fashion-MNIST container): 2 zero bytes, a type byte, a dimension count,
// one big-endian uint32 per dimension, then the data. Only unsigned bytes (type 0x08) are used here.
import { gunzipSync, gzipSync } from 'node:zlib';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

const UBYTE = 0x08;

export interface Idx {
  dims: number[];
  data: Uint8Array;
}

export function readIdx(path: string): Idx {
  const fail = (problem: string): never => {
    throw new Error(`IDX file ${path}: ${problem}`);
  };
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    return fail(`cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  // Detect gzip by content, not by name: files get renamed or unpacked in place.
  if (buf.length >= 2 && buf[0] === 0x1f && buf[1] === 0x8b) {
    try {
      buf = gunzipSync(buf);
    } catch (e) {
      fail(`corrupt or truncated gzip data (${(e as Error).message})`);
    }
  }
  if (buf.length < 4) fail(`too short for an IDX header (${buf.length} bytes)`);
  if (buf[0] !== 0 || buf[1] !== 0) {
    fail(`bad magic number 0x${buf.subarray(0, 4).toString('hex')} (expected 0x0000TTDD: not an IDX file)`);
  }
  if (buf[2] !== UBYTE) fail(`unsupported data type 0x${buf[2].toString(16).padStart(2, '0')} (only unsigned byte 0x08)`);
  const ndim = buf[3];
  if (ndim < 1) fail('zero dimensions');
  const headerLen = 4 + 4 * ndim;
  if (buf.length < headerLen) fail(`truncated header: ${ndim} dimensions need ${headerLen} bytes, file has ${buf.length}`);
  const dims: number[] = [];
  for (let i = 0; i < ndim; i++) dims.push(buf.readUInt32BE(4 + 4 * i));
  const expected = dims.reduce((a, b) => a * b, 1);
  const found = buf.length - headerLen;
  if (found < expected) fail(`truncated: dims [${dims.join(', ')}] need ${expected} data bytes, found ${found}`);
  if (found > expected) fail(`${found - expected} trailing bytes after the data for dims [${dims.join(', ')}]`);
  // Copy into a fresh array so callers don't pin the (possibly much larger) file buffer.
  return { dims, data: new Uint8Array(buf.subarray(headerLen)) };
}

/** Writes unsigned-byte IDX; gzip defaults to whether the name ends in .gz. Output is byte-reproducible. */
export function writeIdx(path: string, dims: number[], data: Uint8Array, opts: { gzip?: boolean } = {}): void {
  if (dims.length < 1 || dims.length > 255) throw new Error(`writeIdx ${path}: need 1..255 dimensions, got ${dims.length}`);
  for (const d of dims) {
    if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) throw new Error(`writeIdx ${path}: bad dimension ${d}`);
  }
  const size = dims.reduce((a, b) => a * b, 1);
  if (size !== data.length) throw new Error(`writeIdx ${path}: dims [${dims.join(', ')}] need ${size} bytes, data has ${data.length}`);
  const header = Buffer.alloc(4 + 4 * dims.length);
  header[2] = UBYTE;
  header[3] = dims.length;
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i));
  const raw = Buffer.concat([header, data]);
  // Node's gzip header has mtime 0 and no file name, so the same input gives the same bytes.
  const out = (opts.gzip ?? path.endsWith('.gz')) ? gzipSync(raw, { level: 9 }) : raw;
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, out);
}
