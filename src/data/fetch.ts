// `bnlab data fetch`: downloads with a progress bar and checks checksums. Offline (DNS failure,
// refused or slow connection) it fails within seconds and says how to provide the files instead.
import { createHash } from 'node:crypto';
import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import type { Progress } from '../util/progress.js';

interface Item {
  url: string;
  file: string;
  // Fashion-MNIST: sha256 of the *decompressed* IDX bytes, so re-gzipped copies (Debian's) verify
  // too. CIFAR-10: the md5 published on the dataset page (no sha256 is published).
  check: { algo: 'sha256-gunzip' | 'md5'; hex: string };
}

const FMNIST = 'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com';
export const FETCHABLE: Record<string, { items: Item[]; howTo: string; after: string }> = {
  'fashion-mnist': {
    items: [
      ['train-images-idx3-ubyte.gz', 'c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888'],
      ['train-labels-idx1-ubyte.gz', 'bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9'],
      ['t10k-images-idx3-ubyte.gz', '5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b'],
      ['t10k-labels-idx1-ubyte.gz', '0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34'],
    ].map(([file, hex]) => ({ url: `${FMNIST}/${file}`, file, check: { algo: 'sha256-gunzip' as const, hex } })),
    howTo:
      'Offline? Install Debian/Ubuntu\'s package: `apt-get install dataset-fashion-mnist` (bnlab finds /usr/share/datasets/fashion-mnist by itself), ' +
      'or copy the four files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) ' +
      'into a folder and use `--set data.name=fashion-mnist --set data.path=DIR` (or env BNLAB_FASHION_MNIST=DIR).',
    after: 'use it with: --set data.name=fashion-mnist --set data.path=',
  },
  cifar10: {
    items: [{ url: 'https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz', file: 'cifar-10-binary.tar.gz', check: { algo: 'md5', hex: 'c32a1d4ab5d03f1284b67883e8d87530' } }],
    howTo:
      'Offline? On a machine with network get cifar-10-binary.tar.gz (the "CIFAR-10 binary version", https://www.cs.toronto.edu/~kriz/cifar.html), ' +
      'unpack it (tar xzf) and copy its cifar-10-batches-bin/ folder (data_batch_1.bin..data_batch_5.bin, test_batch.bin) to this machine; then ' +
      '`--set data.name=cifar10 --set data.path=PATH/cifar-10-batches-bin`.',
    after: 'unpack with `tar xzf cifar-10-binary.tar.gz -C DIR`, then use --set data.name=cifar10 --set data.path=DIR/cifar-10-batches-bin; here DIR=',
  },
};

export function checksum(data: Buffer, check: Item['check']): string {
  if (check.algo === 'md5') return createHash('md5').update(data).digest('hex');
  return createHash('sha256').update(gunzipSync(data)).digest('hex');
}

/** Downloads every file of `name` into dir, verifying each; throws with the offline instructions. */
export async function fetchDataset(name: string, dirIn: string, progress: Progress, connectTimeoutMs = 5000): Promise<string[]> {
  const ds = FETCHABLE[name];
  if (!ds) throw new Error(`data fetch: unknown dataset '${name}' (${Object.keys(FETCHABLE).join(', ')}); ImageNet cannot be downloaded automatically (it needs an image-net.org account)`);
  const dir = resolve(dirIn);
  mkdirSync(dir, { recursive: true });
  const done: string[] = [];
  for (const it of ds.items) {
    const ctl = new AbortController();
    const timer = setTimeout(() => ctl.abort(), connectTimeoutMs);
    let res: Response;
    try {
      res = await fetch(it.url, { signal: ctl.signal });
    } catch (e) {
      const cause = (e as { cause?: { code?: string; message?: string } }).cause;
      const why = ctl.signal.aborted ? `no answer within ${connectTimeoutMs / 1000} s` : (cause?.code ?? cause?.message ?? (e as Error).message);
      throw new Error(`cannot download ${it.url}: ${why} (no network?).\n${ds.howTo}`);
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok || !res.body) throw new Error(`cannot download ${it.url}: HTTP ${res.status}.\n${ds.howTo}`);
    const total = Number(res.headers.get('content-length') ?? 0);
    progress.start(it.file, total || 1);
    const chunks: Buffer[] = [];
    let got = 0;
    for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
      chunks.push(Buffer.from(chunk));
      got += chunk.length;
      progress.update(total ? got : 0, `${(got / 1e6).toFixed(1)} MB`);
    }
    progress.stop();
    const data = Buffer.concat(chunks);
    const sum = checksum(data, it.check);
    if (sum !== it.check.hex) throw new Error(`${it.url}: ${it.check.algo} ${sum} does not match the expected ${it.check.hex}; the download is damaged or the file changed upstream. Nothing was written.`);
    const out = join(dir, it.file);
    writeFileSync(`${out}.part`, data);
    renameSync(`${out}.part`, out);
    done.push(out);
  }
  return done;
}
