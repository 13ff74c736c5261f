// Every environment variable bnlab reads, in one place: `bnlab --help` lists them and
// `bnlab doctor` shows the ones set, so a forgotten export is visible where a user looks.
export const ENV_VARS: [name: string, meaning: string][] = [
  ['BNLAB_CUDA_LIB_DIRS', "colon-separated folders searched first for the CUDA libraries of bnlab's cuda backend (libcuda.so.1, libnvrtc, libcublas, libcublasLt, libcudnn 9)"],
  ['BNLAB_PYTHON', "python whose site-packages hold pip's NVIDIA wheels (nvidia/*/lib, searched after BNLAB_CUDA_LIB_DIRS), and bench --peer's python (default python3)"],
  ['BNLAB_CUDA_CACHE', "where the cuda backend keeps the kernels NVRTC compiled for the GPU (default ~/.cache/bnlab/cuda; keyed by source, options, NVRTC version and GPU)"],
  ['VIRTUAL_ENV, CONDA_PREFIX', 'an active environment: its site-packages (and conda\'s lib folder) are searched for the CUDA libraries too'],
  ['CUDA_HOME, CUDA_PATH', 'a CUDA toolkit searched for the CUDA libraries after site-packages (then /usr/local/cuda, LD_LIBRARY_PATH, the ldconfig cache)'],
  ['BNLAB_BACKEND_TIMEOUT_S', 'seconds a backend may take to start before bnlab stops with an error (default 120)'],
  ['BNLAB_WASM_THREADS', 'wasm XNNPACK threads (default: the usable CPUs, at most 8)'],
  ['BNLAB_NATIVE_THREADS', 'OpenMP threads of the native oneDNN kernels (default: the wasm threads)'],
  ['BNLAB_WASM_FIXES', 'wasm kernel fixes to apply: none, or a comma list (default: all)'],
  ['BNLAB_WASM_KERNELS', "bnlab's own kernels on the wasm backend: none, all, or a comma list (default: all)"],
  ['BNLAB_CONV_LAYOUT', 'oneDNN convolution activations: auto (NHWC where oneDNN has direct kernels for it, else its blocked layouts), blocked, nhwc (default auto)'],
  ['BNLAB_MEMORY_GB', 'GB the backend may hold: training splits a batch into micro-batches of whole NBS groups to fit (default 3.2 on wasm, 8 elsewhere)'],
  ['BNLAB_FASHION_MNIST', 'folder holding full Fashion-MNIST, for data.name=fashion-mnist without data.path'],
  ['BNLAB_PIPE_WAIT_S', 'seconds a config given as a FIFO (named pipe) may stay without a writer before bnlab stops with an error (default 30)'],
  ['BNLAB_PROGRESS_SECONDS', 'when output is not a terminal (Slurm, nohup, tee), seconds between progress lines (default 30)'],
  ['BNLAB_NODE', 'node binary the Slurm jobs of sweep --slurm run (default node)'],
  ['BNLAB_DEBUG', 'print stack traces of errors'],
];

/** Two columns, the meaning wrapped to `width`, for --help. */
export function envHelp(width = 100, indent = 2): string {
  const col = Math.max(...ENV_VARS.map(([n]) => n.length)) + 2;
  return ENV_VARS.map(([name, meaning]) => {
    const lines: string[] = [];
    let cur = '';
    for (const word of meaning.split(' ')) {
      if (cur && indent + col + cur.length + 1 + word.length > width) {
        lines.push(cur);
        cur = word;
      } else cur = cur ? `${cur} ${word}` : word;
    }
    lines.push(cur);
    const pad = ' '.repeat(indent + col);
    return lines.map((l, i) => (i === 0 ? `${' '.repeat(indent)}${name.padEnd(col)}${l}` : `${pad}${l}`)).join('\n');
  }).join('\n');
}

/** The variables among ENV_VARS set in `env`, as NAME=value. */
export const envSet = (env: Record<string, string | undefined> = process.env): string[] =>
  ENV_VARS.flatMap(([names]) => names.split(', ')).filter((n) => env[n] !== undefined).map((n) => `${n}=${env[n]}`);
