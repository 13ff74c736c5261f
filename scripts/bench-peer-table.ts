// The side-by-side table of docs/performance.md: `bnlab bench --peer` (bnlab on wasm vs PyTorch,
// same model, input, batch, NBS and threads) for ResNet-20 32x32 b32 and b128 and ResNet-50
// 64x64 b32, repeated, medians printed as a Markdown table (and every run as JSON lines on
// stderr). Runs alternate between configurations so that a burst of load hits all of them.
//   npx tsx scripts/bench-peer-table.ts [--runs 3] [--steps 5] [--only r20-b32,r20-b128,r50-b32] [--lockstep]
// --lockstep: bnlab and PyTorch training steps alternate one by one (bench --lockstep), and the
// training ratio is the median over every pair of steps (peer ms / bnlab ms), with its quartiles:
// each pair is measured seconds apart, so the host's drift over minutes cancels.
// (issue 15's set: --only r20-b128-nbs128,r20-b128-nbs2,r56-b128,r50-b32; r20-b32 and r20-b128 use NBS 32)
// Environment (BNLAB_WASM_KERNELS, OMP_*) passes through to both sides.
import { spawnSync } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command } from 'commander';
import { median } from '../src/util/median.js';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const synthetic = (size: number) => [
  'data.name=synthetic', `data.synthetic.size=${size}`, 'data.synthetic.channels=3', 'data.synthetic.classes=10',
  'eval.batch_size=128', 'precise.samples=256',
];
const CONFIGS: Record<string, { label: string; set: string[] }> = {
  'r20-b32': { label: 'ResNet-20 32x32 b32', set: [...synthetic(32), 'model.depth=20', 'optim.batch_size=32', 'bn.nbs=32'] },
  'r20-b128': { label: 'ResNet-20 32x32 b128', set: [...synthetic(32), 'model.depth=20', 'optim.batch_size=128', 'bn.nbs=32'] },
  'r20-b128-nbs128': { label: 'ResNet-20 32x32 b128 NBS 128', set: [...synthetic(32), 'model.depth=20', 'optim.batch_size=128', 'bn.nbs=128'] },
  'r20-b128-nbs2': { label: 'ResNet-20 32x32 b128 NBS 2', set: [...synthetic(32), 'model.depth=20', 'optim.batch_size=128', 'bn.nbs=2'] },
  'r56-b128': { label: 'ResNet-56 32x32 b128 NBS 32', set: [...synthetic(32), 'model.depth=56', 'optim.batch_size=128', 'bn.nbs=32'] },
  'r50-b32': {
    label: 'ResNet-50 64x64 b32',
    set: [...synthetic(64), 'model.arch=resnet50', 'model.width=64', 'optim.batch_size=32', 'bn.nbs=32'],
  },
};

interface Side {
  train_images_per_s: number; inference_images_per_s: number; precise_seconds: number; peak_rss_mb: number; params: number;
  train_steps_ms?: number[]; inference_passes_ms?: number[];
}

const o = new Command()
  .option('--runs <n>', 'runs per configuration', '3')
  .option('--steps <n>', 'timed training steps per run', '5')
  .option('--only <list>', `comma list of ${Object.keys(CONFIGS).join(', ')}`, Object.keys(CONFIGS).join(','))
  .option('--lockstep', 'alternate bnlab and PyTorch training steps and inference passes one by one; ratio = median over pairs')
  .parse()
  .opts<{ runs: string; steps: string; only: string; lockstep?: boolean }>();

const names = o.only.split(',').map((s) => s.trim());
const fail = (msg: string): never => {
  process.stderr.write(`bench-peer-table: ${msg}\n`);
  process.exit(1);
};
for (const n of names) if (!CONFIGS[n]) fail(`unknown configuration ${n}; use ${Object.keys(CONFIGS).join(', ')}`);
const runs = Math.max(1, Number(o.runs) || 3);
const results = new Map<string, { bnlab: Side; peer: Side }[]>(names.map((n) => [n, []]));

for (let r = 0; r < runs; r++) {
  for (const n of names) {
    const args = ['bin/bnlab.js', 'bench', '--backend', 'wasm', '--peer', ...(o.lockstep ? ['--lockstep'] : []), '--json', '--steps', o.steps,
      ...CONFIGS[n].set.flatMap((s) => ['--set', s])];
    const p = spawnSync(process.execPath, args, { cwd: root, encoding: 'utf8', maxBuffer: 1 << 24 });
    if (p.status !== 0) fail(`bench ${n} failed (exit ${p.status}):\n${p.stderr.slice(-2000)}`);
    const out = JSON.parse(p.stdout) as { bnlab: Side; peer: Side };
    if (out.bnlab.params !== out.peer.params) fail(`${n}: parameter counts differ (${out.bnlab.params} vs ${out.peer.params})`);
    if (o.lockstep && out.bnlab.train_steps_ms?.length !== out.peer.train_steps_ms?.length) fail(`${n}: lockstep step counts differ`);
    if (o.lockstep && (!out.bnlab.inference_passes_ms?.length || out.bnlab.inference_passes_ms.length !== out.peer.inference_passes_ms?.length)) fail(`${n}: lockstep inference pass counts differ`);
    results.get(n)!.push(out);
    process.stderr.write(JSON.stringify({ config: n, run: r + 1, load: os.loadavg()[0].toFixed(2), ...out }) + '\n');
  }
}

const f = (x: number, d = 1) => x.toFixed(d);
const quantile = (xs: number[], q: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(q * xs.length))];
type Rate = 'train_images_per_s' | 'inference_images_per_s' | 'peak_rss_mb';
const lines = [
  `${runs} runs each, medians${o.lockstep ? `; in lockstep (training: ${o.steps} step pairs per run, ratio = median over all pairs, q1-q3 their quartiles; inference: ${results.get(names[0])![0].bnlab.inference_passes_ms?.length ?? 0} pass pairs per run, ratio = median over all pairs)` : ''}; ${os.cpus().length} CPUs (${os.cpus()[0]?.model ?? '?'}), ${process.env.BNLAB_WASM_KERNELS ? `BNLAB_WASM_KERNELS=${process.env.BNLAB_WASM_KERNELS}` : 'all bnlab kernels on'}`,
  '',
  `| model, input, batch | params | train bnlab / PyTorch img/s | ratio${o.lockstep ? ' | q1-q3' : ''} | inference img/s | ratio | PreciseBN img/s (N=256) | ratio | peak RSS MB bnlab / PyTorch |`,
  `|---|---:|---:|---:${o.lockstep ? '|---' : ''}|---:|---:|---:|---:|---:|`,
];
for (const n of names) {
  const rs = results.get(n)!;
  const m = (side: 'bnlab' | 'peer', k: Rate) => median(rs.map((x) => x[side][k]));
  const ratio = (k: Rate) => median(rs.map((x) => x.bnlab[k] / x.peer[k]));
  const preciseRate = (s: Side) => 256 / s.precise_seconds;
  const pr = median(rs.map((x) => preciseRate(x.bnlab) / preciseRate(x.peer)));
  // lockstep: step i of bnlab and step i of the peer ran back to back
  const pairs = o.lockstep ? rs.flatMap((x) => (x.bnlab.train_steps_ms ?? []).map((b, i) => x.peer.train_steps_ms![i] / b)) : [];
  const train = o.lockstep ? `${f(median(pairs), 2)} | ${f(quantile(pairs, 0.25), 2)}-${f(quantile(pairs, 0.75), 2)}` : f(ratio('train_images_per_s'), 2);
  const inferPairs = o.lockstep ? rs.flatMap((x) => x.bnlab.inference_passes_ms!.map((b, i) => x.peer.inference_passes_ms![i] / b)) : [];
  const infer = o.lockstep ? median(inferPairs) : ratio('inference_images_per_s');
  lines.push(`| ${CONFIGS[n].label} | ${rs[0].bnlab.params.toLocaleString('en')} | ${f(m('bnlab', 'train_images_per_s'))} / ${f(m('peer', 'train_images_per_s'))} | ${train} | ${f(m('bnlab', 'inference_images_per_s'), 0)} / ${f(m('peer', 'inference_images_per_s'), 0)} | ${f(infer, 2)} | ${f(median(rs.map((x) => preciseRate(x.bnlab))), 0)} / ${f(median(rs.map((x) => preciseRate(x.peer))), 0)} | ${f(pr, 2)} | ${f(m('bnlab', 'peak_rss_mb'), 0)} / ${f(m('peer', 'peak_rss_mb'), 0)} |`);
}
process.stdout.write(lines.join('\n') + '\n');
