// `bnlab export`: a run's checkpoint as a PyTorch state_dict in the safetensors format, weights
// plus one set of population statistics as BatchNorm running_mean / running_var, under
// torchvision's names (ResNet-50) or scripts/torch_resnet.py's (CIFAR ResNets). No backend and no
// data: the checkpoint's tensors are renamed, transposed to PyTorch's layouts and written.
import { existsSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Command } from 'commander';
import { ConfigError, readConfigFile, validateConfig } from '../config/load.js';
import type { Config } from '../config/schema.js';
import { MODES } from '../bn/modes.js';
import { buildNetwork } from '../nn/resnet.js';
import { torchStateDict } from '../nn/torch-names.js';
import { CheckpointError, firstNonFinite, readCheckpoint, writeFileAtomic, type Checkpoint } from '../run/checkpoint.js';
import { originProblem } from '../run/identity.js';
import { bnlabVersion, readRunInfo } from '../run/metadata.js';
import { runPaths } from '../run/paths.js';
import { checkpointFor } from '../run/retention.js';
import type { RunMeta } from '../run/state.js';
import { encodeSafetensors } from '../util/safetensors.js';
import { MODE } from '../bn/columns.js';

/** Population statistics a checkpoint can hold (mini-batch statistics are computed per test batch: nothing to export). */
export const EXPORT_STATS = [MODE.ema, MODE.precise, MODE.frozen] as const;
type ExportStats = (typeof EXPORT_STATS)[number];

interface ExportFlags {
  run?: string;
  epoch?: string;
  checkpoint?: string;
  stats?: string;
  format: string;
  out?: string;
}

/** PyTorch's BatchNorm2d default eps: the loaders below build their models with it. */
const TORCH_EPS = 1e-5;

/** The checkpoint as eval would take it: finite, this run's (run id + config), a finished epoch unless named by --checkpoint. */
function readExportable(path: string, cfg: Config, runDir: string, named: boolean): Checkpoint<RunMeta> {
  const ckpt = readCheckpoint<RunMeta>(path);
  const bad = firstNonFinite(ckpt);
  if (bad) throw new ConfigError(`${path} holds a non-finite value (${bad}): there is no model to export; export another epoch (--epoch N)`);
  const foreign = originProblem(ckpt.meta, cfg, readRunInfo(runPaths(runDir).runInfo)?.id);
  if (foreign) throw new ConfigError(`${path} cannot be exported as part of ${runDir}: ${foreign}; export it with RUN set to the run that wrote it`);
  if (ckpt.meta.progress.step > 0 && !named) {
    throw new ConfigError(`${path} was saved mid-epoch (epoch ${ckpt.meta.epoch + 1}, step ${ckpt.meta.progress.step}) by an interrupted run: pick a finished epoch with --epoch N, or pass the file with --checkpoint to export it anyway`);
  }
  return ckpt;
}

/** --stats, or the default: the statistics the run evaluates with at that epoch: FrozenBN's after the switch, else PreciseBN's, else the EMA. */
function chooseStats(asked: string | undefined, has: (s: ExportStats) => boolean, cfg: Config, path: string): ExportStats {
  if (asked === undefined) return has(MODE.frozen) ? MODE.frozen : has(MODE.precise) ? MODE.precise : MODE.ema;
  if (asked === MODE.minibatch || asked === MODE.composed) throw new ConfigError(`--stats ${asked}: mini-batch statistics are computed from each test batch, so there are no population statistics to export; use ${EXPORT_STATS.join(', ')}`);
  if (!EXPORT_STATS.includes(asked as ExportStats)) throw new ConfigError(`--stats: unknown statistics '${asked}' (use ${EXPORT_STATS.join(', ')})`);
  const s = asked as ExportStats;
  if (s === MODE.frozen && !has(s)) throw new ConfigError(`--stats frozen: ${path} has no FrozenBN statistics (the run has bn.frozen_last_epochs = ${cfg.bn.frozen_last_epochs}, and they exist from the switch on); use ema${has(MODE.precise) ? ' or precise' : ''}`);
  if (s === MODE.precise && !has(s)) throw new ConfigError(`--stats precise: ${path} has no PreciseBN statistics (the run computes them every precise.every epochs and at the end); export another epoch, or use ema`);
  return s;
}

/** What the file says about itself (__metadata__: strings only). */
function metadataOf(ckpt: Checkpoint<RunMeta>, path: string, cfg: Config, stats: ExportStats, inCh: number, classes: number): Record<string, string> {
  const m = cfg.model;
  return {
    format: 'pt',
    producer: `bnlab ${bnlabVersion()}`,
    names: m.arch === 'resnet50' ? 'torchvision.models.resnet50' : 'scripts/torch_resnet.py',
    arch: m.arch,
    ...(m.arch === 'resnet-cifar' ? { depth: String(m.depth) } : {}),
    width: String(m.width),
    in_channels: String(inCh),
    num_classes: String(classes),
    bn_eps: String(cfg.bn.eps),
    stats,
    ...(stats !== MODE.ema ? { precise: `N=${cfg.precise.samples} B=${cfg.precise.batch_size} ${cfg.precise.estimator}` } : {}),
    running_var: 'unbiased (PyTorch convention, as bnlab stores it)',
    epoch: String(ckpt.meta.epoch),
    ...(ckpt.meta.progress.step > 0 ? { step_in_epoch: String(ckpt.meta.progress.step) } : {}),
    run_id: ckpt.meta.run_id ?? '',
    checkpoint: path,
    config: JSON.stringify(cfg),
  };
}

/** How to load the file in PyTorch, and what would make the model there differ from bnlab's. */
function loadHint(cfg: Config, out: string, inCh: number, classes: number): { hint: string; notes: string[] } {
  const m = cfg.model;
  const notes: string[] = [];
  if (cfg.bn.eps !== TORCH_EPS) notes.push(`bn.eps is ${cfg.bn.eps}, PyTorch's default ${TORCH_EPS}: build the model with eps=${cfg.bn.eps} in every BatchNorm2d`);
  if (m.arch === 'resnet50' && (m.width !== 64 || inCh !== 3)) notes.push(`the names are torchvision's, but torchvision.models.resnet50 has width 64 and 3 input channels (this model: ${m.width}, ${inCh}); scripts/torch_resnet.py builds it with its own names`);
  const model = m.arch === 'resnet50' ? `torchvision.models.resnet50(num_classes=${classes})` : `torch_resnet.build_model('resnet-cifar', ${m.depth}, ${m.width}, ${inCh}, ${classes})`;
  return { hint: `load: ${model}.load_state_dict(safetensors.torch.load_file('${out}'))`, notes };
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description("write a run's weights and population statistics as a PyTorch state_dict (safetensors): torchvision's names for ResNet-50, scripts/torch_resnet.py's for the CIFAR ResNets")
    .argument('[run]', 'run folder (written by bnlab train)')
    .option('-r, --run <dir>', 'the run folder, as bnlab eval takes it')
    .option('--epoch <n>', 'checkpoint of this epoch (default: the last)')
    .option('--checkpoint <file>', "a checkpoint file of this run, or the words best / last: the run's checkpoints/best.ckpt / last.ckpt")
    .option('--stats <name>', `the population statistics written as running_mean / running_var: ${EXPORT_STATS.map((s) => `${s} (${MODES[s].help})`).join('; ')}. Default: frozen when the checkpoint holds FrozenBN statistics (after the switch), else precise when it holds PreciseBN statistics, else ema. The variance is the unbiased one, as PyTorch's running_var`)
    .option('--format <name>', 'file format: safetensors', 'safetensors')
    .option('-o, --out <file>', 'where to write (default: <run>/model-<stats>.safetensors)')
    .action((run: string | undefined, f: ExportFlags) => {
      if (run && f.run && resolve(run) !== resolve(f.run)) throw new ConfigError(`two runs given (${run} and --run ${f.run}): pass one`);
      const given = run ?? f.run;
      if (!given) throw new ConfigError('bnlab export needs a run folder: bnlab export RUN [--epoch N | --checkpoint FILE|best|last] [--stats ema|precise|frozen]');
      if (f.format !== 'safetensors') throw new ConfigError(`--format: '${f.format}' is not supported (use safetensors)`);
      const runDir = resolve(given);
      const paths = runPaths(runDir);
      if (!existsSync(paths.config)) throw new ConfigError(`${given}: no config.yaml there; pass a folder written by bnlab train`);
      const cfg = validateConfig(readConfigFile(paths.config), paths.config);
      const epoch = f.epoch === undefined ? undefined : Number(f.epoch);
      if (epoch !== undefined && (!Number.isInteger(epoch) || epoch < 1)) throw new ConfigError(`--epoch must be an integer >= 1, got '${f.epoch}'`);
      if (f.stats !== undefined) chooseStats(f.stats, () => true, cfg, ''); // an unknown name is refused before any file is read
      const path = checkpointFor(paths, { epoch, checkpoint: f.checkpoint });
      const ckpt = readExportable(path, cfg, runDir, f.checkpoint !== undefined);
      const [stem, fc] = [ckpt.tensors.get('param/stem.conv'), ckpt.tensors.get('param/fc.weight')];
      if (!stem || !fc) throw new CheckpointError(`${path} holds no model parameters (param/stem.conv, param/fc.weight)`);
      const [inCh, classes] = [stem.shape[2], fc.shape[1]];
      const net = buildNetwork(cfg.model, inCh, classes);
      const has = (s: ExportStats) => ckpt.tensors.has(`${s}/${net.bnLayers[0].name}/mean`);
      const stats = chooseStats(f.stats, has, cfg, path);
      let tensors;
      try {
        tensors = torchStateDict(net, cfg.model.arch, (n) => ckpt.tensors.get(`param/${n}`), (l) => ({ mean: ckpt.tensors.get(`${stats}/${l}/mean`), variance: ckpt.tensors.get(`${stats}/${l}/variance`) }));
      } catch (e) {
        throw new CheckpointError(`${path}: ${(e as Error).message}: it was written by a different model config`);
      }
      const out = resolve(f.out ?? join(runDir, `model-${stats}.safetensors`));
      writeFileAtomic(out, encodeSafetensors(tensors, metadataOf(ckpt, path, cfg, stats, inCh, classes)), 'free space and run the command again');
      const { hint, notes } = loadHint(cfg, out, inCh, classes);
      const bytes = statSync(out).size;
      const size = bytes < 2 ** 20 ? `${(bytes / 1024).toFixed(1)} KiB` : `${(bytes / 2 ** 20).toFixed(1)} MiB`;
      process.stdout.write(`wrote ${out} (${size}): epoch ${ckpt.meta.epoch} of ${runDir}, ${MODES[stats].label} statistics, ${tensors.length} tensors\n${hint}\n`);
      for (const n of notes) process.stderr.write(`bnlab export: note: ${n}\n`);
    });
}
