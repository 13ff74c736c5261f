// Checkpoints: one file, written to a temporary name, fsynced and renamed, so a crash or Ctrl-C
// never leaves a half-written checkpoint behind. Layout: magic, header length, JSON header
// (metadata + tensor index), then the float32 data of every tensor.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

const MAGIC = 'BNLABCK1';

export interface StoredTensor {
  shape: number[];
  data: Float32Array;
}

export interface Checkpoint<M = Record<string, unknown>> {
  meta: M;
  tensors: Map<string, StoredTensor>;
}

export function writeCheckpoint(path: string, ckpt: Checkpoint<unknown>): void {
  mkdirSync(dirname(path), { recursive: true });
  const index: { name: string; shape: number[]; offset: number; length: number }[] = [];
  let offset = 0;
  for (const [name, t] of ckpt.tensors) {
    index.push({ name, shape: t.shape, offset, length: t.data.length });
    offset += t.data.length * 4;
  }
  const header = Buffer.from(JSON.stringify({ meta: ckpt.meta, index }), 'utf8');
  const prefix = Buffer.alloc(12);
  prefix.write(MAGIC, 0, 'ascii');
  prefix.writeUInt32LE(header.length, 8);
  const tmp = `${path}.tmp-${process.pid}`;
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, prefix);
    writeSync(fd, header);
    for (const t of ckpt.tensors.values()) writeSync(fd, new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
}

export function readCheckpoint<M = Record<string, unknown>>(path: string): Checkpoint<M> {
  const buf = readFileSync(path);
  if (buf.length < 12 || buf.toString('ascii', 0, 8) !== MAGIC) throw new Error(`${path} is not a bnlab checkpoint (bad magic)`);
  const hlen = buf.readUInt32LE(8);
  if (12 + hlen > buf.length) throw new Error(`${path}: checkpoint is truncated (header runs past the end)`);
  const { meta, index } = JSON.parse(buf.toString('utf8', 12, 12 + hlen));
  const base = 12 + hlen;
  const tensors = new Map<string, StoredTensor>();
  for (const e of index as { name: string; shape: number[]; offset: number; length: number }[]) {
    const start = base + e.offset;
    if (start + e.length * 4 > buf.length) throw new Error(`${path}: checkpoint is truncated (tensor ${e.name})`);
    const data = new Float32Array(e.length);
    new Uint8Array(data.buffer).set(buf.subarray(start, start + e.length * 4));
    tensors.set(e.name, { shape: e.shape, data });
  }
  return { meta, tensors };
}
