// The one source of truth for every knob of a bnlab run: type, range, default and meaning.
// `bnlab config` prints it as commented YAML; `bnlab train` validates every config against it.
import { z } from 'zod';
import { VAL_COLUMNS, type ValColumn } from '../bn/columns.js';

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.number().int().min(min).max(max);
// Free strings are bounded and single-line: a 50 MB value would be copied into every checkpoint.
const text = (max: number) =>
  z
    .string()
    .max(max, { error: (i) => `at most ${max} characters (this one has ${(i.input as string).length})` })
    .regex(/^[^\u0000-\u001f\u007f]*$/, 'must not contain control characters (newline, tab, NUL)');
// prefault({}): an omitted section is parsed as {}, so every key in it takes its default.
const section = <T extends z.ZodRawShape>(shape: T, doc: string) => z.object(shape).strict().prefault({} as never).describe(doc);

const data = section(
  {
    name: z
      .enum(['fashion-mnist-mini', 'fashion-mnist', 'mnist', 'cifar10', 'imagefolder', 'synthetic'])
      .default('fashion-mnist-mini')
      .describe('dataset: the Fashion-MNIST subset shipped with bnlab, full Fashion-MNIST or MNIST (IDX files), CIFAR-10 (binary batches), an ImageNet-layout folder (train/<class>/*.JPEG, val/...), or generated data for tests'),
    path: text(4096).nullable().default(null).describe('directory of a full dataset (imagefolder: the root holding train/ and val/); null finds Fashion-MNIST (Debian package dataset-fashion-mnist, env BNLAB_FASHION_MNIST)'),
    val_labels: text(4096).nullable().default(null).describe("imagefolder with a flat val/ (original ILSVRC layout): label file, relative to data.path; lines 'FILE LABEL' or 'FILE,LABEL' (LABEL a class folder name or 0-based sorted index), or one LABEL per line in sorted file order"),
    image_size: int(8, 1024).default(224).describe('imagefolder: crop size fed to the network (train RandomResizedCrop, val resize size*256/224 + center crop)'),
    workers: int(0, 256).default(0).describe('imagefolder: decoding threads (images decoded at once); 0 = one per core'),
    decoder: z
      .enum(['auto', 'native', 'sharp'])
      .default('auto')
      .describe("imagefolder: JPEG decoding: native (bnlab's libjpeg-turbo addon: decodes only the crop, resizes as torchvision/PIL bilinear; ~2x sharp's speed), sharp (libvips), auto = native when built (bnlab doctor). Other formats and refused JPEGs always go through sharp"),
    shrink_on_load: z.boolean().default(true).describe('imagefolder: let the JPEG decoder downscale by 2, 4 or 8 in the DCT domain when the crop is at least that much larger than its output (faster; differs from a direct resize by ~1 grey level)'),
    prefetch: int(1, 64).default(2).describe('SGD steps of data loaded ahead of the one training'),
    on_error: z.enum(['skip', 'fail']).default('skip').describe('an unreadable image: skip (replaced by the next readable one, counted and reported) or fail the run naming the file'),
    cache_dir: text(4096).nullable().default(null).describe('imagefolder: where the file index is cached; null = $XDG_CACHE_HOME/bnlab or ~/.cache/bnlab'),
    corruption: z
      .object({
        type: z.enum(['contrast', 'gaussian_noise', 'jpeg_compression', 'brightness']).describe('ImageNet-C corruption (Hendrycks & Dietterich)'),
        severity: int(1, 5).default(3).describe('severity 1..5'),
      })
      .strict()
      .nullable()
      .default(null)
      .describe('evaluate/estimate on a corrupted copy (paper Table 4): applied after the resize/crop, before normalization, seeded per image; null = clean'),
    train_limit: int(1).nullable().default(null).describe('use only this many training images (class-balanced, fixed); null = all'),
    val_limit: int(1).nullable().default(null).describe('use only this many validation images (class-balanced, fixed); null = all'),
    augment: section(
      {
        pad_crop: int(0, 64).default(2).describe('training augmentation: zero-pad by this many pixels, then crop back at random'),
        flip: z.boolean().default(true).describe('training augmentation: random horizontal flip'),
        scale: z.tuple([z.number().gt(0).max(1), z.number().gt(0).max(1)]).default([0.08, 1]).describe('imagefolder RandomResizedCrop: range of the crop area as a fraction of the image'),
        ratio: z.tuple([z.number().positive(), z.number().positive()]).default([3 / 4, 4 / 3]).describe('imagefolder RandomResizedCrop: range of the crop aspect ratio (w/h)'),
      },
      'training-time augmentation',
    ),
    synthetic: section(
      {
        classes: int(2, 1000).default(4).describe('number of classes'),
        train: int(1).default(512).describe('training images'),
        val: int(1).default(256).describe('validation images'),
        size: int(4, 512).default(16).describe('image height and width'),
        channels: int(1, 4).default(1).describe('image channels'),
        seed: int(0).default(0).describe('generator seed'),
      },
      'the generated dataset (data.name = synthetic)',
    ),
  },
  'what to train and evaluate on',
);

/** First-stage channels each architecture is defined with (He et al.: CIFAR ResNets 16, ResNet-50 64). */
export const STANDARD_WIDTH = { 'resnet-cifar': 16, resnet50: 64 } as const;

/** Columns a `best` checkpoint can be chosen by: the validation error of each statistics mode. */
export const BEST_METRICS: readonly [ValColumn | 'none', ...(ValColumn | 'none')[]] = [VAL_COLUMNS[0], ...VAL_COLUMNS.slice(1), 'none'];

const checkpoint = section(
  {
    keep_last: int(0)
      .default(0)
      .describe(
        'keep only the newest K epoch checkpoints (last.ckpt and best.ckpt are always kept); 0 = keep every epoch. Default 0: Table 1 evaluates intermediate epochs (bnlab eval --epoch N); set K for long runs (ResNet-50: 189 MB per epoch)',
      ),
    best_metric: z
      .enum(BEST_METRICS)
      .default('none')
      .describe('also keep checkpoints/best.ckpt: the epoch with the lowest value of this metrics column (ties: the earlier epoch); none = no best checkpoint (the paper reports final-epoch errors)'),
  },
  'checkpoint retention (checkpoint_every sets how often one is written)',
);

const model = section(
  {
    arch: z.enum(['resnet-cifar', 'resnet50']).default('resnet-cifar').describe('CIFAR-style ResNet (depth 6n+2) or ResNet-50 v1.5'),
    depth: int(8, 1202).default(8).describe('resnet-cifar depth, 6n+2 (8, 14, 20, 32, 56, 110)').refine((d) => (d - 2) % 6 === 0, 'depth must be 6n+2 (8, 14, 20, 32, ...)'),
    width: int(1, 1024).nullable().default(null).describe(`channels of the first stage; null = the architecture's standard (${Object.entries(STANDARD_WIDTH).map(([a, w]) => `${a} ${w}`).join(', ')})`),
    zero_init_last_gamma: z.boolean().default(true).describe('initialise the last BN gamma of every residual block to zero (paper recipe)'),
  },
  'the network',
);

const bn = section(
  {
    nbs: int(1).default(32).describe('normalization batch size (NBS): samples one BN call normalizes over; each total batch is split into groups of NBS'),
    eps: z.number().positive().max(1).default(1e-5).describe('epsilon added to the variance'),
    ema_decay: z.number().min(0).max(1).default(0.9).describe('EMA decay lambda: mu <- lambda*mu + (1-lambda)*mu_B once per SGD step (paper 0.9 = PyTorch momentum 0.1)'),
    ema_groups: z
      .enum(['one', 'all'])
      .default('one')
      .describe("which NBS groups feed the EMA each step: 'one' (as one GPU worker of the paper does) or 'all' (their average: a different, less noisy estimator)"),
    frozen_last_epochs: int(0)
      .default(0)
      .describe('FrozenBN for the last K epochs: at the switch PreciseBN computes population statistics, and BN normalizes with them (in training too) for the rest of the run; the affine keeps training (paper Fig. 6: 20 of 100); those epochs report their validation error as val_err_frozen'),
    composition: z
      .enum(['random', 'classes'])
      .default('random')
      .describe("what each NBS group is made of in training: 'random' (a shuffle) or 'classes' (bn.composition_classes classes, NBS/K samples of each: a pattern the model can learn to read through BN, paper Fig. 8)"),
    composition_classes: int(1)
      .default(2)
      .describe("bn.composition 'classes': classes per NBS group (K; must divide bn.nbs). A class's last n mod (NBS/K) samples sit out an epoch; with unequal classes, groups of the largest may too"),
  },
  'BatchNorm: the normalization batch and the EMA estimator',
);

const optim = section(
  {
    batch_size: int(1).default(256).describe('total (SGD) batch size: samples per optimizer step'),
    micro_batch: int(1).nullable().default(null).describe('samples per forward/backward pass (a multiple of bn.nbs; gradients are accumulated over the total batch); null = the largest multiple of bn.nbs dividing batch_size, up to 256 (or one NBS group) and what fits in memory'),
    base_lr: z.number().positive().default(0.2).describe('learning rate per 256 samples: lr = base_lr * batch_size / 256 (linear scaling; paper 0.1)'),
    momentum: z.number().min(0).max(1).default(0.9).describe('SGD momentum'),
    nesterov: z.boolean().default(false).describe('Nesterov momentum'),
    weight_decay: z.number().min(0).default(1e-4).describe('L2 weight decay on conv/fc weights'),
    weight_decay_bn: z.number().min(0).nullable().default(null).describe('weight decay on BN gamma/beta and biases; null = same as weight_decay'),
    schedule: z.enum(['step', 'cosine']).default('step').describe('learning-rate schedule after warmup'),
    steps: z.array(z.number().min(0)).default([30, 60, 90]).describe('step schedule: epochs at which lr is multiplied by gamma'),
    gamma: z.number().positive().max(1).default(0.1).describe('step schedule: lr factor at each step'),
    warmup_epochs: z.number().min(0).default(0).describe('linear warmup length in epochs (may be fractional)'),
    warmup_factor: z.number().min(0).max(1).default(0.1).describe('lr at the start of warmup, as a fraction of the scaled lr'),
  },
  'optimizer and learning-rate schedule (paper: SGD momentum 0.9, wd 1e-4, lr 0.1 per 256, x0.1 at 30/60/90)',
);

const precise = section(
  {
    enabled: z.boolean().default(true).describe('run PreciseBN and report val_err_precise'),
    every: int(1).default(1).describe('run PreciseBN every this many epochs (and always after the last)'),
    samples: int(1).default(2000).describe('N: training samples PreciseBN reads, capped at the training-set size (paper 10^4)'),
    batch_size: int(1).default(32).describe('B: PreciseBN batch size, independent of training; B >= N means B = N, computed exactly (one pass over the N samples per BN layer)'),
    estimator: z.enum(['pooled', 'mean-of-var']).default('pooled').describe("'pooled' (the paper) or 'mean-of-var' (original BN paper, B/(B-1) mean var)"),
    augment: z.boolean().default(true).describe('apply training augmentation to the PreciseBN samples'),
  },
  'PreciseBN: population statistics from a frozen model on N training samples in batches of B',
);

const evalCfg = section(
  {
    batch_size: int(1).default(500).describe('validation batch size (population statistics: only memory depends on it)'),
    every: int(1).default(1).describe('evaluate every this many epochs (and always after the last)'),
    minibatch: z.boolean().default(false).describe('also evaluate with mini-batch statistics: test batches of NBS samples normalized by their own statistics (val_err_minibatch; paper Fig. 5)'),
    composed: z.boolean().default(false).describe("also evaluate with mini-batch statistics of test groups of NBS samples composed like training's (bn.composition), beside random ones (val_err_composed; paper Fig. 8)"),
    train_minibatch: z.boolean().default(false).describe('also report the error on the un-augmented training set with mini-batch statistics of NBS samples (train_err_nbs; paper Fig. 5)'),
    train_minibatch_samples: int(1).default(10000).describe('training samples used for train_err_nbs (a fixed subset)'),
  },
  'evaluation during training',
);

const trace = section(
  {
    layers: z.array(text(200)).default([]).describe("BN layers to trace for Fig. 2, e.g. ['s2.b1.bn1']; empty = no trace"),
    channels: z.array(int(0)).default([0]).describe('channels of each traced layer'),
    batches: int(1).default(100).describe('M: batches of the current model whose means are recorded at each trace point'),
    batch_size: int(1).nullable().default(null).describe('batch size of those batches; null = bn.nbs'),
    every_iters: int(0).default(0).describe('also trace every K iterations (0 = only at epoch ends)'),
    until_epoch: int(0).default(1).describe('iteration-level tracing stops after this many epochs'),
  },
  'Fig. 2 trace: EMA mean vs means of M batches of the current model and their average, written to bn_trace.csv',
);

const log = section(
  {
    every_steps: int(0).default(20).describe('per-step scalars (training loss, lr, img/s, data wait, averaged over the last K steps) every K SGD steps into scalars.jsonl; 0 = none'),
    tensorboard: z.boolean().default(true).describe('also write TensorBoard event files into tb/ in the run folder: the per-step scalars and every epoch\'s metrics.csv row (tensorboard --logdir results)'),
  },
  'logging between epochs (metrics.csv has one row per epoch)',
);

/**
 * The paper's tables and figures a run may stand in for in `bnlab report`: declared by the run (a
 * sweep file sets it), never guessed from batch sizes or folder names. A run declaring none is
 * reported in a plain table of what its sweep varies.
 */
export const REPORT_ROLES = {
  'table1.small-batch': "Table 1's small-batch model (paper: total batch 256); Figs. 2-4 read it too (its BN trace and error curves)",
  'table1.large-batch': "Table 1's large-batch model (paper: 8192); its evaluated epoch nearest 30% of the schedule plays the paper's epoch 30 of 100",
  'table2.regular-nbs': "Table 2's model trained with the usual NBS (paper: 32)",
  'table2.small-nbs': "Table 2's model trained with a tiny NBS (paper: 2)",
  'fig5-6': "Figs. 5-6's NBS sweep at one total batch; its FrozenBN runs (bn.frozen_last_epochs > 0) are Fig. 6's",
  'fig6.continuation': "another continuation of a Fig. 6 fork (continuation.seed): the findings average FrozenBN − regular BN over a seed's continuations before comparing seeds; never in Figs. 5-6's tables",
  'fig5-6.variant': "Figs. 5-6's NBS sweep in a changed regime (another depth, data or augmentation): shown beside the fig5-6 runs, named by the config keys it changes, with its own findings; never pooled into Figs. 5-6",
  table4: "Table 4: its eval.csv rows with population statistics from another domain (bnlab eval --stats-data / --data)",
  fig8: 'Fig. 8: a model trained on patterned NBS groups (bn.composition), or one trained on random groups as the control',
} as const;
export type ReportRole = keyof typeof REPORT_ROLES;
const ROLE_NAMES = Object.keys(REPORT_ROLES) as [ReportRole, ...ReportRole[]];
/** Roles accumulate: a run shared by two experiments (Table 1's small-batch run is Table 2's NBS-32 model) plays both. */
export const unionRoles = (a: readonly ReportRole[], b: readonly ReportRole[]): ReportRole[] => ROLE_NAMES.filter((r) => a.includes(r) || b.includes(r));

// A fork's continuation drawn afresh: the same model at the fork point, trained on from there with
// other shuffles. Fig. 6's two arms fork from one checkpoint per seed; several continuations of
// each fork tell the spread of one fork's outcome from the spread between seeds' models.
const continuation = section(
  {
    seed: int(0).nullable().default(null).describe(
      'null = the run draws every epoch from `seed`. A number k: from epoch after_epoch + 1 on, the shuffles, augmentation and PreciseBN samples of training (FrozenBN\'s switch included) are drawn from (seed, k) instead: another continuation of the same model. Evaluations (bnlab eval) still draw from `seed`',
    ),
    after_epoch: int(0).default(0).describe('the last epoch drawn from `seed` (a fork at epoch E: E or later, so the epochs it copies stay the source run\'s)'),
  },
  'another continuation of a run after some epoch (forks of one checkpoint, Fig. 6)',
);

const report = section(
  {
    roles: z
      .array(z.enum(ROLE_NAMES))
      .default([])
      .describe(`which of the paper's tables and figures this run stands in for in bnlab report (a run may play several; [] = none: its sweep gets a plain table of the keys it varies): ${ROLE_NAMES.map((r) => `${r} = ${REPORT_ROLES[r]}`).join('; ')}. Changing it never touches training: a resume, a fork and a sweep accept it and add the roles given to those the run has (remove one by editing the run's config.yaml), and a sweep adds its roles to runs already finished`),
  },
  'how bnlab report uses this run',
);

const cuda = section(
  {
    tf32: z.boolean().default(true).describe(
      "cuDNN convolutions and cuBLAS matmuls may use TF32 tensor cores (products of 10-bit mantissas, float32 sums; PyTorch's default for cuDNN convolutions); false = full float32 math",
    ),
    deterministic: z.boolean().default(false).describe(
      "only deterministic cuDNN algorithms (bnlab's own CUDA kernels always reduce in a fixed order): a --resume then continues bit for bit on the GPU as on the CPU; its cost is not measured yet (docs/gpu.md)",
    ),
  },
  "bnlab's cuda backend (backend: cuda or auto on a GPU machine)",
);

/** Every --backend / `backend:` value; the one list the config, the flags and initBackend share. */
export const BACKENDS = ['auto', 'cuda', 'tensorflow', 'wasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];
export const BACKEND_HELP =
  "tfjs backend: cuda = bnlab's own CUDA backend (NVIDIA driver, NVRTC, cuBLAS and cuDNN 9 found at run time; bnlab doctor says what is missing), " +
  'tensorflow = @tensorflow/tfjs-node-gpu (libtensorflow 2.9.1: CUDA 11.2 + cuDNN 8.1 only; optional package), wasm, cpu (pure JS, slow); ' +
  'auto = cuda when it is available, else wasm, else cpu (never tensorflow)';

/** The config as written (model.width may be null); configSchema resolves it. */
export const configObject = z
  .object({
    name: text(100).regex(/^(?!\.\.?$)[\w.-]+$/, 'a folder name: letters, digits, _ . - (not . or ..)').default('quick').describe('run name: results go to results/<name>'),
    seed: int(0).default(0).describe('seed for initialisation, shuffling, augmentation and PreciseBN samples'),
    continuation,
    epochs: int(1).default(3).describe('training epochs'),
    backend: z.enum(BACKENDS).default('auto').describe(BACKEND_HELP),
    threads: int(0, 256).default(0).describe('wasm threads; 0 = all cores'),
    cuda,
    data,
    model,
    bn,
    optim,
    precise,
    eval: evalCfg,
    trace,
    log,
    checkpoint_every: int(1).default(1).describe('keep checkpoints/epoch-N.ckpt every this many epochs (and after the last); last.ckpt is written after every epoch'),
    checkpoint,
    report,
    max_loss: z.number().positive().default(1e3).describe('stop the run when the training loss is NaN or above this'),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (!(c.bn.nbs >= 1) || !(c.optim.batch_size >= 1)) return; // range errors already reported
    const micro = microBatch(c);
    if (c.bn.nbs > c.optim.batch_size) {
      ctx.addIssue({ code: 'custom', path: ['bn', 'nbs'], message: `NBS ${c.bn.nbs} exceeds the total batch ${c.optim.batch_size}; set bn.nbs <= optim.batch_size` });
    }
    if (c.bn.composition === 'classes' && c.bn.nbs % c.bn.composition_classes !== 0) {
      ctx.addIssue({ code: 'custom', path: ['bn', 'composition_classes'], message: `${c.bn.composition_classes} classes per group do not divide NBS ${c.bn.nbs}: each group takes NBS/K samples of each class` });
    }
    if (c.optim.batch_size % c.bn.nbs !== 0) {
      ctx.addIssue({ code: 'custom', path: ['optim', 'batch_size'], message: `total batch ${c.optim.batch_size} is not a multiple of NBS ${c.bn.nbs}` });
    }
    const batchOk = c.bn.nbs <= c.optim.batch_size && c.optim.batch_size % c.bn.nbs === 0;
    if (batchOk && c.optim.micro_batch !== null && (micro % c.bn.nbs !== 0 || micro > c.optim.batch_size || c.optim.batch_size % micro !== 0)) {
      ctx.addIssue({
        code: 'custom',
        path: ['optim', 'micro_batch'],
        message: `micro-batch ${micro} must be a multiple of NBS ${c.bn.nbs} and divide the total batch ${c.optim.batch_size}`,
      });
    }
  });

/** The config every command uses: as written, with model.width resolved from the architecture. */
export const configSchema = configObject.transform((c) => ({ ...c, model: { ...c.model, width: c.model.width ?? STANDARD_WIDTH[c.model.arch] } }));

export type Config = z.output<typeof configSchema>;
export type DataConfig = Config['data'];
/**
 * Samples per forward/backward pass: the configured micro-batch, else the largest multiple of NBS
 * that divides the total batch and is at most `cap` (default 256, or one NBS group if larger).
 */
export function microBatch(c: Pick<Config, 'optim' | 'bn'>, cap = Math.max(256, c.bn.nbs)): number {
  if (c.optim.micro_batch !== null) return c.optim.micro_batch;
  let best = c.bn.nbs;
  for (let m = c.bn.nbs; m <= Math.min(c.optim.batch_size, cap); m += c.bn.nbs) if (c.optim.batch_size % m === 0) best = m;
  return best;
}
