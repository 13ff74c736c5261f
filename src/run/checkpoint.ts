// Checkpoints: one file, written to a temporary name, fsynced and renamed, so a crash or Ctrl-C
// never leaves a half-written checkpoint behind; and verified on read, so a damaged file is
// refused instead of resumed from. Layout (v2): magic, header length, SHA-256 of the header,
// the JSON header (metadata + tensor index with each tensor's SHA-256), then the float32 data.
import { createHash } from 'node:crypto';
import { closeSync, copyFileSync, fsyncSync, mkdirSync, openSync, readFileSync, readSync, renameSync, rmSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

const MAGIC = 'BNLABCK2';
/** Written before checksums existed: still readable, not verifiable. */
const MAGIC_V1 = 'BNLABCK1';

export class CheckpointError extends Error {}

export interface StoredTensor {
  shape: number[];
  data: Float32Array;
}

export interface Checkpoint<M = Record<string, unknown>> {
  meta: M;
  tensors: Map<string, StoredTensor>;
}

interface IndexEntry {
  name: string;
  shape: number[];
  offset: number;
  length: number;
  sha256?: string;
}

const bytesOf = (a: Float32Array) => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest();

/** fsync a folder so a rename in it survives a power loss. */
export function fsyncDir(dir: string): void {
  let fd: number | undefined;
  try {
    fd = openSync(dir, 'r');
    fsyncSync(fd);
  } catch {
    // Some filesystems refuse fsync on a directory; the rename itself is still atomic.
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Write `chunks` to `path` atomically (temp file, fsync, rename, fsync of the folder). Errors name the file. */
export function writeFileAtomic(path: string, chunks: readonly Uint8Array[], fullDiskHint = 'free space (or keep fewer checkpoints) and continue with --resume'): void {
  const tmp = `${path}.tmp-${process.pid}`;
  try {
    mkdirSync(dirname(path), { recursive: true });
    const fd = openSync(tmp, 'w');
    try {
      for (const c of chunks) writeSync(fd, c);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    const why = err.code === 'ENOSPC' ? 'the disk is full' : err.code === 'EDQUOT' ? 'the disk quota is exceeded' : err.message;
    try {
      rmSync(tmp, { force: true }); // nothing half-written is left behind
    } catch {
      // no temporary was created (its folder could not be)
    }
    const what = err.code === 'EISDIR' ? 'a folder is in the way' : err.code === 'ENOTDIR' ? 'a file is in the way of a folder above it' : err.code === 'EROFS' ? 'the file system is read-only' : why;
    throw new CheckpointError(`could not write ${path}: ${what}${err.code === 'ENOSPC' || err.code === 'EDQUOT' ? `; ${fullDiskHint}` : ''}`);
  }
  fsyncDir(dirname(path));
}

/** A report, figure or table the user asked for, written atomically (a full disk leaves the old file or none, never half of one). */
export function writeOutput(path: string, content: string | Uint8Array): void {
  writeFileAtomic(path, [typeof content === 'string' ? Buffer.from(content, 'utf8') : content], 'free space and run the command again');
}

export function writeCheckpoint(path: string, ckpt: Checkpoint<unknown>): void {
  const index: IndexEntry[] = [];
  let offset = 0;
  for (const [name, t] of ckpt.tensors) {
    index.push({ name, shape: t.shape, offset, length: t.data.length, sha256: sha256(bytesOf(t.data)).toString('hex') });
    offset += t.data.length * 4;
  }
  const header = Buffer.from(JSON.stringify({ meta: ckpt.meta, index }), 'utf8');
  const prefix = Buffer.alloc(12);
  prefix.write(MAGIC, 0, 'ascii');
  prefix.writeUInt32LE(header.length, 8);
  writeFileAtomic(path, [prefix, sha256(header), header, ...[...ckpt.tensors.values()].map((t) => bytesOf(t.data))]);
}

/** Read and verify a checkpoint: any damaged byte (header or tensor) is a CheckpointError naming the file. */
export function readCheckpoint<M = Record<string, unknown>>(path: string): Checkpoint<M> {
  let buf: Buffer;
  try {
    buf = readFileSync(path);
  } catch (e) {
    throw new CheckpointError(`cannot read checkpoint ${path}: ${(e as Error).message}`);
  }
  const magic = buf.length >= 12 ? buf.toString('ascii', 0, 8) : '';
  if (magic !== MAGIC && magic !== MAGIC_V1) throw new CheckpointError(`${path} is not a bnlab checkpoint (bad magic)`);
  const hlen = buf.readUInt32LE(8);
  const hstart = magic === MAGIC ? 44 : 12;
  if (hstart + hlen > buf.length) throw new CheckpointError(`${path}: checkpoint is truncated (header runs past the end)`);
  const header = buf.subarray(hstart, hstart + hlen);
  if (magic === MAGIC && !sha256(header).equals(buf.subarray(12, 44))) throw new CheckpointError(`${path}: checkpoint header is damaged (checksum mismatch)`);
  let parsed: { meta: M; index: IndexEntry[] };
  try {
    parsed = JSON.parse(header.toString('utf8'));
  } catch (e) {
    throw new CheckpointError(`${path}: checkpoint header is not valid JSON (${(e as Error).message})`);
  }
  const base = hstart + hlen;
  const tensors = new Map<string, StoredTensor>();
  for (const e of parsed.index) {
    const start = base + e.offset;
    if (start + e.length * 4 > buf.length) throw new CheckpointError(`${path}: checkpoint is truncated (tensor ${e.name})`);
    const bytes = buf.subarray(start, start + e.length * 4);
    if (magic === MAGIC && sha256(bytes).toString('hex') !== e.sha256) throw new CheckpointError(`${path}: tensor '${e.name}' is damaged (checksum mismatch)`);
    const data = new Float32Array(e.length);
    new Uint8Array(data.buffer).set(bytes);
    tensors.set(e.name, { shape: e.shape, data });
  }
  return { meta: parsed.meta, tensors };
}

/** A checkpoint's metadata without reading its tensors (a ResNet-50 file is ~190 MB); header verified. */
export function readCheckpointMeta<M = Record<string, unknown>>(path: string): M {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new CheckpointError(`cannot read checkpoint ${path}: ${(e as Error).message}`);
  }
  try {
    const prefix = Buffer.alloc(44);
    const got = readSync(fd, prefix, 0, 44, 0);
    const magic = got >= 12 ? prefix.toString('ascii', 0, 8) : '';
    if (magic !== MAGIC && magic !== MAGIC_V1) throw new CheckpointError(`${path} is not a bnlab checkpoint (bad magic)`);
    const hstart = magic === MAGIC ? 44 : 12;
    const header = Buffer.alloc(prefix.readUInt32LE(8));
    if (readSync(fd, header, 0, header.length, hstart) !== header.length) throw new CheckpointError(`${path}: checkpoint is truncated (header runs past the end)`);
    if (magic === MAGIC && !sha256(header).equals(prefix.subarray(12, 44))) throw new CheckpointError(`${path}: checkpoint header is damaged (checksum mismatch)`);
    return (JSON.parse(header.toString('utf8')) as { meta: M }).meta;
  } finally {
    closeSync(fd);
  }
}

/** Copy a finished file to `dest` atomically (temp copy, rename): `dest` is never half-copied. */
export function copyFileAtomic(src: string, dest: string): void {
  const tmp = `${dest}.copy-${process.pid}`;
  copyFileSync(src, tmp);
  renameSync(tmp, dest);
  fsyncDir(dirname(dest));
}

/** The first tensor holding a NaN or infinity, as "name[index] = value", or null when all are finite. */
export function firstNonFinite(ckpt: Checkpoint<unknown>): string | null {
  for (const [name, t] of ckpt.tensors) {
    for (let i = 0; i < t.data.length; i++) if (!Number.isFinite(t.data[i])) return `${name}[${i}] = ${t.data[i]}`;
  }
  return null;
}

/**
 * The checkpoint a resume continues from: `last` if it reads back intact, finite and the run's
 * own, else the newest epoch checkpoint that does. `rejected` says why each skipped file was refused.
 */
export function newestGoodCheckpoint<M>(
  last: string,
  epochFiles: readonly string[],
  /** Why a readable, finite checkpoint still cannot be used (another run's, another config): null = it can. */
  problem: (ckpt: Checkpoint<M>) => string | null = () => null,
): { path: string; ckpt: Checkpoint<M>; rejected: string[] } | { path: null; rejected: string[] } {
  const rejected: string[] = [];
  for (const path of [last, ...[...epochFiles].sort().reverse()]) {
    let ckpt: Checkpoint<M>;
    try {
      ckpt = readCheckpoint<M>(path);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).message.includes('ENOENT')) continue;
      rejected.push((e as Error).message);
      continue;
    }
    const bad = firstNonFinite(ckpt);
    if (bad) {
      rejected.push(`${path}: holds a non-finite value (${bad})`);
      continue;
    }
    const why = problem(ckpt);
    if (why) {
      rejected.push(`${path}: ${why}`);
      continue;
    }
    return { path, ckpt, rejected };
  }
  return { path: null, rejected };
}
