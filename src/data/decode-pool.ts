// A fixed pool of decoding threads (decode-worker.mjs). Jobs go to the thread with the fewest
// pending; results come back by id, so the order of completion never affects a batch.
import { cpuBudget } from '../util/cpus.js';
import { Worker } from 'node:worker_threads';
import type { Plan } from './augment.js';

export interface Decoded {
  data: Uint8Array | Float32Array; // HWC RGB: uint8, or normalized and flipped when the job gave `norm`
  width: number;
  height: number;
}

export interface DecodeJob {
  file: string;
  plan: Plan;
  kernel?: 'linear' | 'cubic' | 'lanczos3';
  fastShrink?: boolean;
  failOn?: 'none' | 'truncated' | 'error' | 'warning';
  norm?: { mean: number[]; std: number[] } | null; // normalize (and apply plan.flip) in the thread
}

interface Slot {
  worker: Worker;
  pending: number;
}

export class DecodePool {
  private slots: Slot[] = [];
  private waiting = new Map<number, { resolve: (d: Decoded) => void; reject: (e: Error) => void; slot: Slot }>();
  private nextId = 0;
  readonly size: number;

  /** `workers` 0 = one per core; `decoder` 'native' = JPEGs through native/jpeg (chooseDecoder). */
  constructor(
    workers: number,
    readonly decoder: 'native' | 'sharp' = 'sharp',
  ) {
    this.size = workers > 0 ? workers : cpuBudget().cpus;
  }

  private start(): void {
    const url = new URL('./decode-worker.mjs', import.meta.url);
    for (let i = 0; i < this.size; i++) {
      const worker = new Worker(url, { workerData: { decoder: this.decoder } });
      const slot: Slot = { worker, pending: 0 };
      worker.on('message', (m: { id: number; error?: string } & Decoded) => {
        const w = this.waiting.get(m.id);
        if (!w) return;
        this.waiting.delete(m.id);
        w.slot.pending--;
        if (w.slot.pending === 0) worker.unref(); // an idle pool never keeps the process alive
        if (m.error !== undefined) w.reject(new Error(m.error));
        else w.resolve({ data: m.data, width: m.width, height: m.height });
      });
      worker.on('error', (e) => {
        for (const [id, w] of this.waiting) if (w.slot === slot) (this.waiting.delete(id), w.reject(e));
      });
      worker.unref();
      this.slots.push(slot);
    }
  }

  decode(job: DecodeJob): Promise<Decoded> {
    if (this.slots.length === 0) this.start();
    const slot = this.slots.reduce((a, b) => (b.pending < a.pending ? b : a));
    const id = this.nextId++;
    if (slot.pending++ === 0) slot.worker.ref();
    return new Promise<Decoded>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject, slot });
      slot.worker.postMessage({ id, file: job.file, plan: job.plan, kernel: job.kernel ?? 'linear', fastShrink: job.fastShrink ?? true, failOn: job.failOn ?? 'error', norm: job.norm ?? null });
    });
  }

  async close(): Promise<void> {
    const s = this.slots;
    this.slots = [];
    await Promise.all(s.map((x) => x.worker.terminate()));
  }
}

const pools = new Map<string, DecodePool>();
/** One shared pool per worker count and decoder: splits of a dataset (and repeated loads in tests) share threads. */
export function decodePool(workers: number, decoder: 'native' | 'sharp' = 'sharp'): DecodePool {
  const n = workers > 0 ? workers : cpuBudget().cpus;
  const k = `${n}/${decoder}`;
  if (!pools.has(k)) pools.set(k, new DecodePool(n, decoder));
  return pools.get(k)!;
}
