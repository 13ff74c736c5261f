// The safetensors format (Hugging Face), written directly: the npm registry has no well-kept
// writer (the `safetensors` package is a single 0.0.1 release; @huggingface/hub only reads
// remote headers), and the format is small. Layout: an 8-byte little-endian header length N, N
// bytes of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}
// padded with spaces, then the tensors' raw little-endian bytes, contiguous, with no holes.
import { endianness } from 'node:os';

export interface SafeTensor {
  name: string;
  dtype: 'F32' | 'I64';
  shape: number[];
  data: Float32Array | BigInt64Array;
}

const BYTES = { F32: 4, I64: 8 } as const;

/**
 * The file's bytes, as chunks for writeFileAtomic. Tensors are laid out widest dtype first and the
 * header padded to a multiple of 8, as the reference writer does, so every tensor is aligned.
 */
export function encodeSafetensors(tensors: readonly SafeTensor[], metadata: Record<string, string> = {}): Uint8Array[] {
  if (endianness() !== 'LE') throw new Error('safetensors are little-endian; writing them on a big-endian host is not supported');
  const ordered = [...tensors].sort((a, b) => BYTES[b.dtype] - BYTES[a.dtype]); // stable: same-width order kept
  const header: Record<string, unknown> = { __metadata__: metadata };
  let offset = 0;
  for (const t of ordered) {
    if (t.name in header) throw new Error(`safetensors: tensor '${t.name}' given twice`);
    const size = t.shape.reduce((a, b) => a * b, 1);
    if (size !== t.data.length) throw new Error(`safetensors: tensor '${t.name}' has ${t.data.length} values but shape [${t.shape}]`);
    if ((t.dtype === 'F32') !== t.data instanceof Float32Array) throw new Error(`safetensors: tensor '${t.name}' is not ${t.dtype} data`);
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.data.byteLength] };
    offset += t.data.byteLength;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = Buffer.from(json, 'utf8');
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(head.length));
  return [length, head, ...ordered.map((t) => new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength))];
}
