// `bnlab doctor`'s two GPU sections as text, JSON and fixes: bnlab's own CUDA backend (the
// libraries src/backend/cuda/libs.ts finds) and the optional tensorflow route (tfjs-node-gpu).
// Pure: given what was found, so the wording is tested without a GPU.
import { missingLine, type CudaLibs, type FoundLib, type LibKey } from '../backend/cuda/libs.js';
import { tfLibsProblem, type TensorflowProbe, type TfLib } from '../backend/tensorflow.js';

export interface Section {
  json: Record<string, unknown>;
  lines: string[];
  fixes: string[];
}

const ROWS: [LibKey, string][] = [
  ['driver', 'libcuda.so.1'],
  ['nvrtc', 'libnvrtc.so.13|12'],
  ['cublas', 'libcublas.so.13|12'],
  ['cublasLt', 'libcublasLt.so.*'],
  ['cudnn', 'libcudnn.so.9'],
];

const row = (label: string, lib: FoundLib | undefined) =>
  `  ${(lib?.name ?? label).padEnd(20)} ${lib ? `${lib.path}  (${lib.source}${lib.version ? `, ${lib.version}` : ''})` : 'not found'}`;

export function cudaSection(r: CudaLibs): Section {
  const counts = new Map<string, number>();
  for (const d of r.searched) counts.set(d.source, (counts.get(d.source) ?? 0) + 1);
  const status = r.ok ? 'libraries found' : `unavailable — ${r.missing.length} piece${r.missing.length === 1 ? '' : 's'} missing (see To fix)`;
  const gpus = r.driver.gpus.map((g) => (g.model ? `${g.model} (${g.id})` : g.id));
  const lines = [
    `CUDA (bnlab's own backend)  ${status}`,
    `  driver: ${r.driver.detail}`,
    `  GPUs seen: ${gpus.length ? gpus.join(', ') : 'none'}`,
    ...ROWS.map(([key, label]) => row(label, r.libs[key])),
    `  searched ${r.searched.length} folders${counts.size ? `: ${[...counts].map(([s, n]) => `${s} ${n}`).join(', ')}` : ''}`,
    ...r.notes.map((n) => `  note: ${n}`),
  ];
  return {
    json: { ok: r.ok, driver: r.driver, libraries: r.libs, missing: r.missing, notes: r.notes, searched: r.searched },
    lines,
    fixes: r.missing.map((m) => `CUDA: ${missingLine(m)}`),
  };
}

export function tensorflowSection(probe: TensorflowProbe, libs: TfLib[], gpus: number): Section {
  const problem = tfLibsProblem(libs);
  // an optional route: its fixes are listed only for a user who installed the package
  const fixes = probe.installed && problem ? [`tensorflow route: ${problem}`] : [];
  return {
    json: { ...probe, nvidia_gpus: gpus, libraries: Object.fromEntries(libs.map((l) => [l.name, l.path])), off_loader_path: Object.fromEntries(libs.filter((l) => l.elsewhere).map((l) => [l.name, l.elsewhere])) },
    lines: [
      `tensorflow route (tfjs-node-gpu, CUDA 11.2 + cuDNN 8.1 only)  ${probe.gpu ? 'OK' : 'unavailable'} — ${probe.detail}`,
      `  NVIDIA GPUs visible: ${gpus}`,
      ...libs.map((l) => `  ${l.name.padEnd(20)} ${l.path ?? (l.elsewhere ? `not on the loader's path (found at ${l.elsewhere})` : 'not found')}`),
    ],
    fixes,
  };
}
