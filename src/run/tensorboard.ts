// TensorBoard event files, so a run's curves show in TensorBoard as a timm or Lightning user's do:
// TFRecord framing (length, masked CRC32C of it, the record, masked CRC32C of that) around
// tensorflow.Event protobufs, encoded with protobufjs; one file per session
// (events.out.tfevents.<unix time>.<host>.<pid>), appended as the run goes.
import { closeSync, mkdirSync, openSync, writeSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { crc32c } from '@aws-crypto/crc32c';
import protobuf from 'protobufjs';

// The fields of tensorboard/compat/proto/{event,summary}.proto that scalars use (same numbers).
const { root } = protobuf.parse(`
syntax = "proto3";
message Summary {
  message Value {
    string tag = 1;
    oneof value { float simple_value = 2; }
  }
  repeated Value value = 1;
}
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what { string file_version = 3; Summary summary = 5; }
}`);
const Event = root.lookupType('Event');

/** TFRecord's CRC: CRC32C rotated right by 15 bits plus a constant (so a CRC of CRCs is not trivial). */
const masked = (bytes: Uint8Array) => {
  const c = crc32c(bytes);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
};

/** One TFRecord: the bytes to append for `data`. */
export function tfRecord(data: Uint8Array): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(data.length));
  const out = Buffer.alloc(8 + 4 + data.length + 4);
  len.copy(out, 0);
  out.writeUInt32LE(masked(len), 8);
  Buffer.from(data.buffer, data.byteOffset, data.byteLength).copy(out, 12);
  out.writeUInt32LE(masked(data), 12 + data.length);
  return out;
}

export interface EventWriter {
  /** Scalars at one global step (tag -> value); non-finite values are skipped. */
  scalars(step: number, values: Record<string, number | null | undefined>, wallTime?: number): void;
  close(): void;
}

/** A new event file in `dir` (created), its first record the file version TensorBoard expects. */
export function openEventWriter(dir: string): EventWriter {
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${hostname()}.${process.pid}`);
  const fd = openSync(file, 'a');
  const write = (e: Record<string, unknown>) => writeSync(fd, tfRecord(Event.encode(Event.create(e)).finish()));
  write({ wallTime: Date.now() / 1000, fileVersion: 'brain.Event:2' });
  return {
    scalars(step, values, wallTime = Date.now() / 1000) {
      const value = Object.entries(values)
        .filter((kv): kv is [string, number] => typeof kv[1] === 'number' && Number.isFinite(kv[1]))
        .map(([tag, simpleValue]) => ({ tag, simpleValue }));
      if (value.length) write({ wallTime, step, summary: { value } });
    },
    close: () => closeSync(fd),
  };
}
