// Where bnlab's CUDA backend finds the NVIDIA libraries it dlopens (the driver, NVRTC, cuBLAS,
// cuDNN 9), searched the way users install them, and what to do about each missing piece. The
// search is a pure function of candidate folders and a file-system view, so its order and its
// messages are tested without a GPU; findCudaLibraries() is the I/O around it.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

/** Search order: an explicit setting, then an environment's wheels, a toolkit, the loader's own. */
export const SOURCES = ['BNLAB_CUDA_LIB_DIRS', 'site-packages', 'conda', 'CUDA_HOME', 'LD_LIBRARY_PATH', 'ldconfig', 'system'] as const;
export type LibSource = (typeof SOURCES)[number];

export interface SearchDir {
  dir: string;
  source: LibSource;
  /** how the folder was found, e.g. 'CUDA_PATH=/opt/cuda' or 'python sys.path: /venv/lib/python3.12/site-packages' */
  via: string;
}

/** The file-system view the search reads; tests pass a fake tree, the shell passes node:fs. */
export interface LibFs {
  exists(path: string): boolean;
  /** names in a folder; [] when it is missing or unreadable */
  readdir(dir: string): string[];
}

export type LibKey = 'driver' | 'nvrtc' | 'cublas' | 'cublasLt' | 'cudnn';

export interface FoundLib {
  /** the soname bnlab loads, e.g. 'libcudnn.so.9' */
  name: string;
  path: string;
  dir: string;
  source: LibSource;
  via: string;
  /** the soname's major: 13 for libnvrtc.so.13, 1 for libcuda.so.1 */
  major: number;
  /** full version when a file name beside it says so (libcudnn.so.9.10.2, a wheel's dist-info), else null */
  version: string | null;
}

export interface MissingPiece {
  what: string;
  why: string;
  fix: string;
}

export interface LibSearch {
  libs: Partial<Record<LibKey, FoundLib>>;
  missing: MissingPiece[];
  notes: string[];
}

export interface DriverInfo {
  /** /proc/driver/nvidia exists: the kernel module is loaded */
  present: boolean;
  version: string | null;
  /** newest CUDA major the driver runs (13 from 580, 12 from 525), null when unknown */
  maxCudaMajor: number | null;
  gpus: { id: string; model: string | null }[];
  detail: string;
}

export interface CudaLibs extends LibSearch {
  /** every library found and no piece missing */
  ok: boolean;
  driver: DriverInfo;
  searched: SearchDir[];
}

interface LibSpec {
  key: Exclude<LibKey, 'cublasLt'>;
  title: string;
  stem: string;
  /** newest first */
  majors: number[];
  /** a CUDA-major library: the driver must be new enough for it */
  cudaMajor: boolean;
  why: string;
}

const SPECS: LibSpec[] = [
  { key: 'driver', title: 'CUDA driver', stem: 'libcuda.so', majors: [1], cudaMajor: false, why: 'the NVIDIA driver API: devices, memory, streams, modules' },
  { key: 'nvrtc', title: 'NVRTC', stem: 'libnvrtc.so', majors: [13, 12], cudaMajor: true, why: "compiles bnlab's own GPU kernels at run time" },
  { key: 'cublas', title: 'cuBLAS', stem: 'libcublas.so', majors: [13, 12], cudaMajor: true, why: 'matrix products (dense layers)' },
  { key: 'cudnn', title: 'cuDNN 9', stem: 'libcudnn.so', majors: [9], cudaMajor: false, why: 'convolutions' },
];

/** cuDNN 9's sub-libraries a convolution loads (the FULL configuration; _adv is RNNs/attention only). */
export const CUDNN_SUBLIBS = ['graph', 'ops', 'cnn', 'engines_precompiled', 'engines_runtime_compiled', 'heuristic'].map((s) => `libcudnn_${s}.so.9`);

/** pip wheels by library and CUDA major: CUDA 13 dropped the -cuXX suffix except for cuDNN. */
const WHEEL: Record<'nvrtc' | 'cublas' | 'cudnn', Record<12 | 13, string>> = {
  nvrtc: { 13: 'nvidia-cuda-nvrtc', 12: 'nvidia-cuda-nvrtc-cu12' },
  cublas: { 13: 'nvidia-cublas', 12: 'nvidia-cublas-cu12' },
  cudnn: { 13: 'nvidia-cudnn-cu13', 12: 'nvidia-cudnn-cu12' },
};
/** dist-info name prefixes in site-packages, for a wheel's full version */
const DIST: Partial<Record<LibKey, string>> = { nvrtc: 'nvidia_cuda_nvrtc', cublas: 'nvidia_cublas', cublasLt: 'nvidia_cublas', cudnn: 'nvidia_cudnn' };

const DIR_FIX = 'or set BNLAB_CUDA_LIB_DIRS to the folder holding it';

/** The CUDA major to install for: what the driver runs, CUDA 13 when the driver is unknown. */
const targetMajor = (cap: number | null): 12 | 13 => (cap !== null && cap < 13 ? 12 : 13);

function installFix(key: 'nvrtc' | 'cublas' | 'cudnn', cap: number | null): string {
  if (cap !== null && cap < 12) return `the NVIDIA driver runs CUDA ${cap} at most: upgrade it to >= 525 (CUDA 12) or >= 580 (CUDA 13), then pip install ${WHEEL[key][13]}`;
  const m = targetMajor(cap);
  const alt = m === 13 ? ` (${WHEEL[key][12]} for a driver older than 580)` : ` (the driver runs CUDA 12 at most; ${WHEEL[key][13]} needs driver >= 580)`;
  return `pip install ${WHEEL[key][m]}${alt}, ${DIR_FIX}`;
}

const DRIVER_FIX =
  'libcuda.so.1 comes with the NVIDIA driver, not with pip or the CUDA toolkit: install the driver (e.g. apt install nvidia-driver-580); ' +
  'in a container, start it with --gpus all (NVIDIA Container Toolkit); ' + DIR_FIX;

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** "9.10.2" from a libcudnn.so.9.10.2 beside libcudnn.so.9 (a toolkit or distro install). */
function versionFromFiles(fs: LibFs, dir: string, stem: string, major: number | null): string | null {
  const re = new RegExp(`^${escape(stem)}\\.(\\d+(?:\\.\\d+)+)$`);
  const versions = fs.readdir(dir).map((n) => re.exec(n)?.[1]).filter((v): v is string => !!v && (major === null || v.startsWith(`${major}.`)));
  return versions.sort((a, b) => b.length - a.length)[0] ?? null;
}

/** "9.10.2.21" from site-packages/nvidia_cudnn_cu13-9.10.2.21.dist-info, for a wheel's nvidia/<pkg>/lib. */
function versionFromWheel(fs: LibFs, dir: string, key: LibKey, major: number): string | null {
  const prefix = DIST[key];
  if (!prefix) return null;
  const re = new RegExp(`^${prefix}(?:_cu\\d+)?-(\\d+(?:\\.\\d+)*)\\.dist-info$`);
  const root = dirname(dirname(dirname(dir)));
  return fs.readdir(root).map((n) => re.exec(n)?.[1]).find((v) => v?.startsWith(`${major}.`)) ?? null;
}

function describe(fs: LibFs, d: SearchDir, key: LibKey, stem: string, major: number): FoundLib {
  const name = `${stem}.${major}`;
  const version =
    versionFromFiles(fs, d.dir, stem, key === 'driver' ? null : major) ??
    (d.source === 'site-packages' ? versionFromWheel(fs, d.dir, key, major) : null) ??
    (key === 'nvrtc' ? versionFromFiles(fs, d.dir, 'libnvrtc-builtins.so', major) : null);
  return { name, path: join(d.dir, name), dir: d.dir, source: d.source, via: d.via, major, version };
}

/** The first source holding the library; within a source the newest major the driver runs. */
function pick(spec: LibSpec, dirs: SearchDir[], fs: LibFs, cap: number | null, notes: string[]): FoundLib | null {
  for (const source of SOURCES) {
    const hits = dirs
      .filter((d) => d.source === source)
      .flatMap((d) => spec.majors.map((major) => ({ d, major })))
      .filter(({ d, major }) => fs.exists(join(d.dir, `${spec.stem}.${major}`)))
      .sort((a, b) => b.major - a.major); // stable: folder order within a major
    const runnable = hits.filter((h) => !spec.cudaMajor || cap === null || h.major <= cap);
    for (const h of hits.filter((x) => !runnable.includes(x))) {
      notes.push(`${join(h.d.dir, `${spec.stem}.${h.major}`)} (${source}) skipped: the NVIDIA driver runs CUDA ${cap} at most (upgrade the driver to >= 580 to use CUDA 13)`);
    }
    if (runnable.length) return describe(fs, runnable[0].d, spec.key, spec.stem, runnable[0].major);
  }
  return null;
}

/**
 * Find each library in `dirs` (ordered, see searchDirs) and check what it loads beside itself.
 * `maxCudaMajor`: the driver's (DriverInfo.maxCudaMajor); null searches every major.
 */
export function locateCudaLibs(dirs: SearchDir[], fs: LibFs, maxCudaMajor: number | null = null): LibSearch {
  const libs: Partial<Record<LibKey, FoundLib>> = {};
  const missing: MissingPiece[] = [];
  const notes: string[] = [];
  for (const spec of SPECS) {
    const hit = pick(spec, dirs, fs, maxCudaMajor, notes);
    if (hit) libs[spec.key] = hit;
    else {
      const names = spec.majors.map((m) => `${spec.stem}.${m}`).join(' or ');
      const fix = spec.key === 'driver' ? DRIVER_FIX : installFix(spec.key, maxCudaMajor);
      missing.push({ what: `${names} (${spec.title})`, why: spec.why, fix });
    }
  }

  const nvrtc = libs.nvrtc;
  if (nvrtc && !fs.readdir(nvrtc.dir).some((n) => n.startsWith(`libnvrtc-builtins.so.${nvrtc.major}`))) {
    missing.push({
      what: `libnvrtc-builtins.so.${nvrtc.major}.* next to ${nvrtc.path}`,
      why: 'NVRTC loads it from its own folder at the first compile',
      fix: `reinstall NVRTC whole (pip install --force-reinstall ${WHEEL.nvrtc[nvrtc.major as 12 | 13] ?? WHEEL.nvrtc[13]}), or copy libnvrtc-builtins.so.${nvrtc.major}.* of the same CUDA release into ${nvrtc.dir}`,
    });
  }

  const cublas = libs.cublas;
  if (cublas) {
    // cuBLAS loads cuBLASLt of its own major; the same folder first, as its RUNPATH would.
    const name = `libcublasLt.so.${cublas.major}`;
    const order = [dirs.find((d) => d.dir === cublas.dir) ?? cublas, ...dirs.filter((d) => d.dir !== cublas.dir)];
    const lt = order.find((d) => fs.exists(join(d.dir, name)));
    if (lt) libs.cublasLt = describe(fs, { dir: lt.dir, source: lt.source, via: lt.via }, 'cublasLt', 'libcublasLt.so', cublas.major);
    else missing.push({ what: `${name} (cuBLASLt)`, why: `cuBLAS ${cublas.major} loads it`, fix: `it ships with cuBLAS: pip install --force-reinstall ${WHEEL.cublas[cublas.major as 12 | 13]}, or put ${name} beside ${cublas.path}` });
  }

  const cudnn = libs.cudnn;
  if (cudnn) {
    const absent = CUDNN_SUBLIBS.filter((s) => !fs.exists(join(cudnn.dir, s)));
    if (absent.length) {
      missing.push({
        what: `${absent.join(', ')} next to ${cudnn.path}`,
        why: 'cuDNN 9 loads its sub-libraries from its own folder when a convolution first runs',
        fix: `put every libcudnn_*.so.9 of that cuDNN release beside it (for a pip install: pip install --force-reinstall ${WHEEL.cudnn[targetMajor(maxCudaMajor)]})`,
      });
    }
  }
  return { libs, missing, notes };
}

/** `ldconfig -p` lines for this architecture: "\tlibcuda.so.1 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libcuda.so.1". */
export function parseLdconfig(text: string, arch: string = process.arch): { name: string; path: string }[] {
  const tag = arch === 'arm64' ? 'AArch64' : 'x86-64';
  return text.split('\n').flatMap((line) => {
    const m = /^\s*(\S+)\s+\(([^)]*)\)\s+=>\s+(\S+)\s*$/.exec(line);
    return m && m[2].includes(tag) ? [{ name: m[1], path: m[3] }] : [];
  });
}

export interface SearchInput {
  env: Record<string, string | undefined>;
  /** sys.path entries of the python interpreters asked (pythonSysPath) */
  pythonPath: string[];
  /** `ldconfig -p` output, '' when there is none */
  ldconfig: string;
  /** folders the loader searches by default, and where drivers put libcuda.so.1 */
  systemDirs: string[];
  /** the toolkit folder tried after CUDA_HOME and CUDA_PATH */
  defaultCudaHome: string | null;
  arch?: string;
}

export const SYSTEM_DIRS = ['/usr/lib/x86_64-linux-gnu', '/lib/x86_64-linux-gnu', '/usr/lib64', '/usr/lib/wsl/lib', '/usr/lib'];

const split = (v: string | undefined) => (v ?? '').split(':').map((s) => s.trim()).filter(Boolean);

/** Every candidate folder in search order, each once (its first, strongest source). */
export function searchDirs(input: SearchInput, fs: LibFs): { dirs: SearchDir[]; notes: string[] } {
  const { env } = input;
  const out: SearchDir[] = [];
  const notes: string[] = [];
  const add = (dir: string, source: LibSource, via: string) => {
    if (!out.some((d) => d.dir === dir)) out.push({ dir, source, via });
  };

  for (const d of split(env.BNLAB_CUDA_LIB_DIRS)) {
    if (!fs.exists(d)) notes.push(`BNLAB_CUDA_LIB_DIRS names ${d}, which does not exist`);
    add(d, 'BNLAB_CUDA_LIB_DIRS', 'BNLAB_CUDA_LIB_DIRS');
  }

  // pip's NVIDIA wheels unpack to site-packages/nvidia/<pkg>/lib (CUDA 13: nvidia/cu13/lib), the
  // folders PyTorch preloads from. A venv or conda env is also read directly, in case its python
  // could not be run.
  const envSite = [env.VIRTUAL_ENV, env.CONDA_PREFIX].filter((p): p is string => !!p).flatMap((prefix) =>
    fs.readdir(join(prefix, 'lib')).filter((n) => /^python3\.\d+$/.test(n)).map((n) => join(prefix, 'lib', n, 'site-packages')),
  );
  for (const root of [...input.pythonPath.filter((p) => p.startsWith('/')), ...envSite]) {
    for (const pkg of fs.readdir(join(root, 'nvidia')).sort()) {
      const lib = join(root, 'nvidia', pkg, 'lib');
      if (fs.readdir(lib).length) add(lib, 'site-packages', `python sys.path: ${root}`);
    }
  }
  // conda's cudnn / libcublas / cuda-nvrtc packages install into the environment's lib folder.
  if (env.CONDA_PREFIX && fs.exists(join(env.CONDA_PREFIX, 'lib'))) add(join(env.CONDA_PREFIX, 'lib'), 'conda', `CONDA_PREFIX=${env.CONDA_PREFIX}`);

  const target = (input.arch ?? process.arch) === 'arm64' ? 'sbsa-linux' : 'x86_64-linux';
  const homes: [string, string][] = [
    ...(env.CUDA_HOME ? [[env.CUDA_HOME, `CUDA_HOME=${env.CUDA_HOME}`] as [string, string]] : []),
    ...(env.CUDA_PATH ? [[env.CUDA_PATH, `CUDA_PATH=${env.CUDA_PATH}`] as [string, string]] : []),
    ...(input.defaultCudaHome ? [[input.defaultCudaHome, input.defaultCudaHome] as [string, string]] : []),
  ];
  for (const [home, via] of homes) {
    for (const sub of ['lib64', 'lib', `targets/${target}/lib`]) if (fs.exists(join(home, sub))) add(join(home, sub), 'CUDA_HOME', via);
  }

  // HPC module systems (module load cudnn) often set only LD_LIBRARY_PATH.
  for (const d of split(env.LD_LIBRARY_PATH)) if (fs.exists(d)) add(d, 'LD_LIBRARY_PATH', 'LD_LIBRARY_PATH');

  const wanted = /^lib(cuda|nvrtc|cublas|cublasLt|cudnn)[._]/;
  for (const { name, path } of parseLdconfig(input.ldconfig, input.arch)) if (wanted.test(name)) add(dirname(path), 'ldconfig', 'ldconfig -p');

  for (const d of input.systemDirs) if (fs.exists(d)) add(d, 'system', 'default system folder');
  return { dirs: out, notes };
}

/** The kernel module's version from /proc/driver/nvidia/version ("... Kernel Module  580.95.05  Release ..."). */
export function parseDriverVersion(text: string): string | null {
  return /Kernel Module(?: for \S+)?\s+(\d+\.\d+(?:\.\d+)?)/.exec(text)?.[1] ?? null;
}

/** The newest CUDA major a driver runs (CUDA's minor-version compatibility minimums). */
export function cudaMajorForDriver(version: string | null): number | null {
  const major = version ? Number.parseInt(version, 10) : NaN;
  if (!Number.isFinite(major)) return null;
  return major >= 580 ? 13 : major >= 525 ? 12 : major >= 450 ? 11 : 10;
}

// ---------------------------------------------------------------- the I/O shell

export const nodeFs: LibFs = {
  exists: (p) => existsSync(p),
  readdir: (d) => {
    try {
      return readdirSync(d);
    } catch {
      return [];
    }
  },
};

const PY_CODE = 'import sys,json; print(json.dumps(sys.path))';

/**
 * sys.path of the python a user's wheels would be installed for: BNLAB_PYTHON (else python3 on
 * PATH), and an active venv's or conda env's own interpreter. A few seconds at most each.
 */
export function pythonSysPath(env: Record<string, string | undefined>, timeoutMs = 5000): { paths: string[]; notes: string[] } {
  const envPythons = [env.VIRTUAL_ENV, env.CONDA_PREFIX].filter((p): p is string => !!p).map((p) => join(p, 'bin', 'python')).filter((p) => existsSync(p));
  const pythons = [...new Set([...(env.BNLAB_PYTHON ? [env.BNLAB_PYTHON] : []), ...envPythons, ...(env.BNLAB_PYTHON ? [] : ['python3'])])];
  const paths: string[] = [];
  const notes: string[] = [];
  for (const py of pythons) {
    const r = spawnSync(py, ['-c', PY_CODE], { encoding: 'utf8', timeout: timeoutMs, env, stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      if (r.error || r.status !== 0) throw new Error(r.error?.message ?? `exit ${r.status}: ${r.stderr.trim().split('\n').pop() ?? ''}`);
      paths.push(...(JSON.parse(r.stdout) as unknown[]).filter((p): p is string => typeof p === 'string'));
    } catch (e) {
      notes.push(`could not ask ${py} for its sys.path (${(e as Error).message.split('\n')[0]}): its pip-installed NVIDIA wheels were not searched (set BNLAB_PYTHON to the python that has them, or BNLAB_CUDA_LIB_DIRS)`);
    }
  }
  return { paths: [...new Set(paths)], notes };
}

/** `ldconfig -p` output, '' when it cannot be run. */
export function ldconfigOutput(): string {
  for (const exe of ['/sbin/ldconfig', '/usr/sbin/ldconfig', 'ldconfig']) {
    const r = spawnSync(exe, ['-p'], { encoding: 'utf8', timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] });
    if (!r.error && r.status === 0) return r.stdout;
  }
  return '';
}

/** The NVIDIA kernel driver as /proc tells it: version, and the GPUs it drives. */
export function readDriver(procDir = '/proc/driver/nvidia'): DriverInfo {
  let text: string | null = null;
  try {
    text = readFileSync(join(procDir, 'version'), 'utf8');
  } catch {
    /* no kernel module */
  }
  const gpus = nodeFs.readdir(join(procDir, 'gpus')).sort().map((id) => {
    let model: string | null = null;
    try {
      model = /^Model:\s*(.+?)\s*$/m.exec(readFileSync(join(procDir, 'gpus', id, 'information'), 'utf8'))?.[1] ?? null;
    } catch {
      /* an unreadable entry still counts as a GPU */
    }
    return { id, model };
  });
  if (text === null) {
    const wsl = existsSync('/usr/lib/wsl/lib/libcuda.so.1');
    const detail = wsl
      ? 'WSL2: the driver lives in Windows (no /proc/driver/nvidia); /usr/lib/wsl/lib provides libcuda.so.1'
      : `no NVIDIA kernel driver loaded (${procDir} missing): no GPU is usable`;
    return { present: false, version: null, maxCudaMajor: null, gpus, detail };
  }
  const version = parseDriverVersion(text);
  const maxCudaMajor = cudaMajorForDriver(version);
  const seen = gpus.length ? gpus.map((g) => g.model ?? g.id).join(', ') : 'no GPU listed';
  return { present: true, version, maxCudaMajor, gpus, detail: `NVIDIA driver ${version ?? '(version unreadable)'}${maxCudaMajor ? ` (runs CUDA <= ${maxCudaMajor})` : ''}; ${seen}` };
}

export interface FindOptions {
  env?: Record<string, string | undefined>;
  /** sys.path to search instead of asking python */
  pythonPath?: string[];
  /** `ldconfig -p` output instead of running it */
  ldconfig?: string;
  systemDirs?: string[];
  defaultCudaHome?: string | null;
  procDir?: string;
  fs?: LibFs;
}

/** Find the libraries on this machine: where each came from, and every missing piece with its fix. */
export function findCudaLibraries(opts: FindOptions = {}): CudaLibs {
  const env = opts.env ?? process.env;
  const fs = opts.fs ?? nodeFs;
  const driver = readDriver(opts.procDir);
  const py = opts.pythonPath ? { paths: opts.pythonPath, notes: [] } : pythonSysPath(env);
  const { dirs, notes } = searchDirs(
    {
      env,
      pythonPath: py.paths,
      ldconfig: opts.ldconfig ?? ldconfigOutput(),
      systemDirs: opts.systemDirs ?? SYSTEM_DIRS,
      defaultCudaHome: opts.defaultCudaHome === undefined ? '/usr/local/cuda' : opts.defaultCudaHome,
    },
    fs,
  );
  const found = locateCudaLibs(dirs, fs, driver.maxCudaMajor);
  return { ...found, notes: [...py.notes, ...notes, ...found.notes], ok: found.missing.length === 0, driver, searched: dirs };
}

/** One line a missing piece: "libcudnn.so.9 (cuDNN 9) missing — convolutions. Fix: pip install ...". */
export const missingLine = (m: MissingPiece): string => `${m.what} missing — ${m.why}. Fix: ${m.fix}`;
