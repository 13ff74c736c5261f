// `bnlab data` and the ImageNet path end to end, as a user runs them: inspect (PNG grid), verify
// (lists corrupt files, exit 1), bench (a table per decoder), fetch offline (fails fast with the
// manual route), and one ResNet-50 epoch through `bnlab train` on a generated ImageNet-layout tree
// with corrupt files, reported in the epoch summary and the log.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import sharp from 'sharp';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { readMetrics } from '../src/run/metrics.js';
import { makeJpegTree } from '../scripts/make-jpeg-tree.js';

const ROOT = join(__dirname, '..');
const tmp = mkdtempSync(join(tmpdir(), 'bnlab-datacli-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));
const bnlab = (...args: string[]) =>
  spawnSync(process.execPath, [join(ROOT, 'bin', 'bnlab.js'), ...args], { encoding: 'utf8', timeout: 300_000, cwd: ROOT, env: { ...process.env, XDG_CACHE_HOME: join(tmp, 'cache') } });
let corrupt: string[] = [];
const tree = join(tmp, 'tree');

beforeAll(async () => {
  corrupt = (await makeJpegTree(tree, { classes: 3, train: 6, val: 2, width: 200, height: 150, corrupt: 2 })).corrupt;
}, 30_000);

it('inspect prints classes, counts and sizes and writes a grid of augmented samples', async () => {
  const png = join(tmp, 'grid.png');
  const r = bnlab('data', 'inspect', tree, '-o', png, '-n', '9', '--set', 'data.image_size=48');
  expect(r.status, r.stderr).toBe(0);
  expect(r.stdout).toMatch(/3 classes, 20 train \/ 6 val images/);
  expect(r.stdout).toMatch(/200x150 +18/);
  expect(r.stdout).toMatch(/unreadable +2/);
  const m = await sharp(png).metadata();
  expect([m.format, m.width! > 3 * 48, m.height! > 3 * 48]).toEqual(['png', true, true]);
}, 120_000);

it('verify lists every corrupt file and exits 1', () => {
  const r = bnlab('data', 'verify', tree, '--quiet');
  expect(r.status).toBe(1);
  expect(r.stdout).toMatch(/2 images cannot be decoded/);
  for (const f of corrupt) expect(r.stdout).toContain(f);
}, 120_000);

it('bench prints images/s per decoder and thread count', () => {
  const r = bnlab('data', 'bench', tree, '-w', '1,2', '--decoder', 'native,sharp', '--images', '16', '--batch', '8', '--repeat', '1', '--set', 'data.image_size=64');
  expect(r.status, r.stderr).toBe(0);
  for (const d of ['native', 'sharp']) for (const k of [1, 2]) expect(r.stdout).toMatch(new RegExp(`^ *${d} +${k} +[1-9]\\d* +[1-9]\\d* +`, 'm'));
  const bad = bnlab('data', 'bench', tree, '--decoder', 'turbo');
  expect(bad.status).not.toBe(0);
  expect(bad.stderr).toMatch(/--decoder: 'turbo' is not one of auto, native, sharp/);
}, 120_000);

it('fetch of an unknown dataset names the choices once prefixed; make-jpeg-tree --help is usage, exit 0', () => {
  const r = bnlab('data', 'fetch', 'imagenet');
  expect(r.status).toBe(2);
  expect(r.stderr).toMatch(/^bnlab: data fetch: unknown dataset 'imagenet' \(.*cifar10.*\); ImageNet cannot be downloaded/);
  const h = spawnSync(process.execPath, ['--import', 'tsx', join(ROOT, 'scripts', 'make-jpeg-tree.ts'), '--help'], { encoding: 'utf8', cwd: ROOT });
  expect(h.status, h.stderr).toBe(0);
  expect(h.stdout).toMatch(/^usage: npx tsx scripts\/make-jpeg-tree\.ts OUT /);
}, 60_000);

it('fetch without network fails within seconds, says how to provide the files, leaves nothing behind', () => {
  const dir = join(tmp, 'cifar');
  const t = performance.now();
  const r = bnlab('data', 'fetch', 'cifar10', '--dir', dir, '--timeout', '2000');
  expect(r.status).not.toBe(0);
  expect(performance.now() - t).toBeLessThan(30_000);
  expect(r.stderr).toMatch(/cifar-10-binary\.tar\.gz/);
  expect(r.stderr).toMatch(/data\.path=/);
  expect(existsSync(dir) ? readdirSync(dir) : []).toEqual([]);
}, 60_000);

it('trains a ResNet-50 for one epoch on an ImageNet-layout tree; corrupt files are skipped and reported', () => {
  const out = join(tmp, 'r50');
  // One step of all 20 training images (2 corrupt): both are met, replaced and reported.
  const set = [`data.path=${tree}`, 'precise.samples=16', 'data.image_size=32', 'optim.batch_size=20', 'bn.nbs=4'].flatMap((s) => ['--set', s]);
  const r = bnlab('train', '-c', 'configs/imagenet-tiny-smoke.yaml', ...set, '--out', out);
  expect(r.status, r.stderr).toBe(0);
  const rows = readMetrics(join(out, 'metrics.csv'));
  expect(rows).toHaveLength(1);
  expect(Number(rows[0].val_err_ema)).toBeGreaterThanOrEqual(0);
  expect(Number(rows[0].val_err_precise)).toBeGreaterThanOrEqual(0);
  const log = readFileSync(join(out, 'train.log'), 'utf8');
  expect(log).toMatch(/model resnet50/i);
  expect(log).toMatch(/epoch 1\/1 .*img\/s/);
  expect(log).toMatch(/2 unreadable train images skipped/);
  expect(r.stdout + r.stderr).toMatch(/2 unreadable train images skipped/);
}, 300_000);
