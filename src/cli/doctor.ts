// `bnlab doctor`: what this machine can run bnlab on, and how to fix what is missing.
import { cpus, totalmem } from 'node:os';
import { cpuBudget } from '../util/cpus.js';
import { createRequire } from 'node:module';
import type { Command } from 'commander';
import { findCudaLibraries } from '../backend/cuda/libs.js';
import { findTfCudaLibs, loadTensorflow } from '../backend/tensorflow.js';
import { cudaSection, tensorflowSection, type Section } from './doctor-cuda.js';
import { envSet } from './env-vars.js';

const require = createRequire(import.meta.url);
const version = (pkg: string) => {
  try {
    return (require(`${pkg}/package.json`) as { version: string }).version;
  } catch {
    // packages whose "exports" hide package.json (sharp): ask the package itself
    try {
      const m = require(pkg) as { versions?: Record<string, string>; version?: string };
      return m.versions?.[pkg] ?? m.version ?? 'installed (version unknown)';
    } catch {
      return 'not installed';
    }
  }
};

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description("report Node/tfjs versions, which backends load (bnlab's CUDA libraries, the tensorflow route, wasm SIMD/threads, cpu) and how to fix what is missing")
    .option('--json', 'machine-readable output')
    .action(runDoctor);
}

/** The GPU checks' parts of the text report. */
interface GpuCheck {
  cuda: Section;
  tfRoute: Section;
  deviceLine: string;
  deviceStarted: boolean;
}

/** The native addons' parts of the text report. */
interface NativeCheck {
  dnnl: { loaded: boolean; reason: string };
  convImpl: string | null;
  convLayout: string;
  jpg: { ok: boolean; reason: string };
}

type WasmReport = { loads: boolean; simd?: boolean; threads?: number; fixes?: string[]; kernels?: string[]; notes?: string[]; error?: string };

/**
 * `bnlab doctor`: each check adds its keys to the report and what would fix it, in the order
 * --json shows them; then the report as JSON, or as text (which orders the sections for reading).
 */
async function runDoctor(o: { json?: boolean }): Promise<void> {
  const report = machineReport();
  const fixes: string[] = [];
  const gpu = await checkGpu(report, fixes);
  await checkWasm(report, fixes);
  const native = await checkNativeAddons(report, fixes);
  report.cpu = { loads: true, note: 'pure JS: a last resort, ~30x slower than wasm' };
  // auto tries bnlab's own CUDA backend first, never the tensorflow route
  const chosen = gpu.deviceStarted ? 'cuda' : (report.wasm as WasmReport).loads ? 'wasm' : 'cpu';
  report.auto_backend = chosen;
  report.fixes = fixes;
  if (o.json) return void process.stdout.write(JSON.stringify(report, null, 2) + '\n');
  process.stdout.write(doctorLines(report, gpu, native, chosen, fixes).join('\n') + '\n');
}

/** Node, the machine and the packages bnlab runs on. */
function machineReport(): Record<string, unknown> {
  return {
    node: process.version,
    platform: `${process.platform} ${process.arch}`,
    cores: cpus().length,
    usable_cpus: cpuBudget(),
    memory_gb: +(totalmem() / 2 ** 30).toFixed(1),
    packages: Object.fromEntries(
      ['@tensorflow/tfjs-core', '@tensorflow/tfjs-backend-wasm', '@tensorflow/tfjs-backend-cpu', '@tensorflow/tfjs-node-gpu', 'sharp'].map((p) => [p, version(p)]),
    ),
  };
}

/** bnlab's CUDA libraries, the tensorflow route, the environment, and whether the device starts. */
async function checkGpu(report: Record<string, unknown>, fixes: string[]): Promise<GpuCheck> {
  const cudaLibs = findCudaLibraries();
  const cuda = cudaSection(cudaLibs);
  report.cuda = cuda.json;
  fixes.push(...cuda.fixes);
  const probe = await loadTensorflow();
  const tfRoute = tensorflowSection(probe, findTfCudaLibs(cudaLibs.searched), cudaLibs.driver.gpus.length);
  report.tensorflow = tfRoute.json;
  fixes.push(...tfRoute.fixes);
  report.environment = envSet();
  // The device itself: this also compiles bnlab's kernels with NVRTC (the first time; cached)
  const { openCudaDevice, describeDevice, kernelCacheDir } = await import('../backend/cuda/start.js');
  const dev = cudaLibs.driver.gpus.length ? openCudaDevice({ tf32: true, deterministic: false }) : { why: 'no GPU', notes: [] };
  const deviceLine = 'device' in dev ? `OK — ${describeDevice(dev.device, { tf32: true, deterministic: false })}; kernels compiled by NVRTC (cache ${kernelCacheDir()})` : `not started: ${dev.why}`;
  report.cuda_device = 'device' in dev ? { ok: true, detail: deviceLine } : { ok: false, detail: dev.why };
  if (cudaLibs.driver.gpus.length && !('device' in dev)) fixes.push(`cuda device: ${dev.why}`);
  return { cuda, tfRoute, deviceLine, deviceStarted: 'device' in dev };
}

/** Whether the wasm backend loads, with SIMD and threads. */
async function checkWasm(report: Record<string, unknown>, fixes: string[]): Promise<void> {
  try {
    const { initWasmBackend } = await import('../backend/wasm.js');
    const w = await initWasmBackend({});
    report.wasm = { loads: true, ...w };
    if (!w.simd) fixes.push('wasm: SIMD is off — use Node >= 16 on a CPU with SSE4.1; training will be ~3x slower');
  } catch (e) {
    report.wasm = { loads: false, error: (e as Error).message };
    fixes.push(`wasm: failed to load (${(e as Error).message}); reinstall with npm ci`);
  }
}

/** The native oneDNN kernels and the native JPEG decoder: both optional, both much faster. */
async function checkNativeAddons(report: Record<string, unknown>, fixes: string[]): Promise<NativeCheck> {
  const { loadNative, NATIVE_ADDON_PATH } = await import('../backend/native-addon.js');
  const dnnl = loadNative();
  // what oneDNN picks for a typical layer (ResNet-20's 16-channel 3x3 conv, batch 32) and
  // whether its activations stay NHWC or go through reorders (BNLAB_CONV_LAYOUT)
  const layer = new Int32Array([32, 32, 32, 16, 3, 3, 16, 32, 32, 1, 1, 1, 1, 1, 1]);
  const convImpl = dnnl.addon ? ['forward', 'backward data', 'backward weights'].map((k, i) => `${k} ${dnnl.addon!.impl(i, layer)}`).join(', ') : null;
  const convLayout = process.env.BNLAB_CONV_LAYOUT || 'auto';
  report.dnnl = { loads: dnnl.addon != null, detail: dnnl.reason, path: NATIVE_ADDON_PATH, conv_layout: convLayout, conv_16ch_3x3: convImpl };
  if (!dnnl.addon) fixes.push(`native kernels (~4x faster CPU training on wasm): ${dnnl.reason}`);
  const { nativeJpeg, JPEG_ADDON_PATH } = await import('../data/jpeg-native.js');
  const jpg = nativeJpeg();
  report.jpeg = { loads: jpg.ok, detail: jpg.reason, path: JPEG_ADDON_PATH };
  if (!jpg.ok) fixes.push(`native JPEG decoder (~2x faster image-folder input than sharp): ${jpg.reason}`);
  return { dnnl: { loaded: dnnl.addon != null, reason: dnnl.reason }, convImpl, convLayout, jpg };
}

/** The report as text: the machine, then each backend from the fastest, then what to fix. */
function doctorLines(report: Record<string, unknown>, gpu: GpuCheck, native: NativeCheck, chosen: string, fixes: string[]): string[] {
  const w = report.wasm as WasmReport;
  const { dnnl, convImpl, convLayout, jpg } = native;
  return [
    `node          ${report.node} (${report.platform}, ${report.cores} cores, ${report.memory_gb} GB)`,
    `CPUs: ${cpuBudget().cpus} (${cpuBudget().reason}): thread pools are sized from this`,
    ...Object.entries(report.packages as Record<string, string>).map(([k, v]) => `${k.padEnd(30)} ${v}`),
    '',
    ...gpu.cuda.lines,
    `  device: ${gpu.deviceLine}`,
    ...gpu.tfRoute.lines,
    `wasm          ${w.loads ? `OK — SIMD ${w.simd ? 'on' : 'off'}, ${w.threads} threads, kernel fixes: ${w.fixes?.join(', ') || 'none'}, own kernels: ${w.kernels?.join(', ') || 'none'}` : `FAILED — ${w.error}`}`,
    ...(w.notes ?? []).map((n) => `  ${n}`),
    `  native oneDNN convolutions: ${dnnl.loaded ? `OK — ${dnnl.reason}` : dnnl.reason}`,
    ...(convImpl ? [`    a 16-channel 3x3 layer (BNLAB_CONV_LAYOUT=${convLayout}): ${convImpl}`] : []),
    `cpu           OK (pure JS, last resort)`,
    `jpeg          ${jpg.ok ? `native decoder OK — ${jpg.reason}` : `native decoder ${jpg.reason}; image folders decode with sharp`}`,
    '',
    `environment   ${(report.environment as string[]).join(' ') || '(no bnlab variable set; see bnlab --help)'}`,
    '',
    `--backend auto would use: ${chosen}${chosen === 'cuda' ? '' : ' (no CUDA: CPU speeds, fine for the miniature experiments)'}`,
    ...(fixes.length ? ['', 'To fix:', ...fixes.map((f) => `  - ${f}`)] : []),
  ];
}
