// Where bnlab's CUDA backend finds the NVIDIA libraries: a fake tree of each kind of install
// (BNLAB_CUDA_LIB_DIRS, pip wheels in site-packages, a toolkit, the ldconfig cache) in a temp
// folder, searched through the real I/O shell with the host's own folders switched off.
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { cudaSection } from '../src/cli/doctor-cuda.js';
import { CUDNN_SUBLIBS, cudaMajorForDriver, findCudaLibraries, parseDriverVersion, parseLdconfig, type FindOptions } from '../src/backend/cuda/libs.js';

const root = mkdtempSync(join(tmpdir(), 'bnlab-cuda-libs-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));

/** Small real files: the search only looks at names, never loads them. */
function touch(dir: string, ...names: string[]): string {
  mkdirSync(dir, { recursive: true });
  for (const n of names) writeFileSync(join(dir, n), 'stub\n');
  return dir;
}

const CUDNN = ['libcudnn.so.9', ...CUDNN_SUBLIBS];
/** A complete set for one CUDA major in one folder. */
const fullSet = (dir: string, major = 13) => touch(dir, 'libcuda.so.1', `libnvrtc.so.${major}`, `libnvrtc-builtins.so.${major}.0`, `libcublas.so.${major}`, `libcublasLt.so.${major}`, ...CUDNN);

const explicit = fullSet(join(root, 'explicit'));
const site = join(root, 'venv', 'lib', 'python3.12', 'site-packages');
touch(join(site, 'nvidia', 'cudnn', 'lib'), ...CUDNN);
touch(join(site, 'nvidia', 'cu13', 'lib'), 'libnvrtc.so.13', 'libnvrtc-builtins.so.13.0', 'libcublas.so.13', 'libcublasLt.so.13');
touch(join(site, 'nvidia', 'cuda_nvrtc', 'lib'), 'libnvrtc.so.12', 'libnvrtc-builtins.so.12.4');
touch(join(site, 'nvidia', 'cublas', 'lib'), 'libcublas.so.12', 'libcublasLt.so.12');
touch(join(site, 'nvidia_cudnn_cu13-9.13.0.50.dist-info'), 'METADATA');
const toolkit = join(root, 'cuda-13.0');
fullSet(join(toolkit, 'lib64'));
touch(join(toolkit, 'lib64'), 'libcudnn.so.9.13.0');
const ldDir = fullSet(join(root, 'ld'));
touch(ldDir, 'libcuda.so.580.95.05');
const ldconfig = ['5 libs found in cache', ...['libcuda.so.1', 'libnvrtc.so.13', 'libcublas.so.13', 'libcublasLt.so.13', 'libcudnn.so.9'].map((n) => `\t${n} (libc6,x86-64) => ${ldDir}/${n}`), `\tlibcuda.so.1 (libc6) => /usr/lib/i386-linux-gnu/libcuda.so.1`].join('\n');
const noProc = join(root, 'no-proc');

/** The shell with every host folder switched off: only what a case names is searched. */
const find = (env: Record<string, string>, o: FindOptions = {}) =>
  findCudaLibraries({ env, pythonPath: [], ldconfig: '', systemDirs: [], defaultCudaHome: null, procDir: noProc, ...o });

describe('finding the CUDA libraries', () => {
  it('searches BNLAB_CUDA_LIB_DIRS, then site-packages, then CUDA_HOME, then the ldconfig cache', () => {
    const all = { env: { BNLAB_CUDA_LIB_DIRS: `${join(root, 'missing-dir')}:${explicit}`, CUDA_HOME: toolkit }, o: { pythonPath: [site], ldconfig } };
    const a = find(all.env, all.o);
    expect(a.ok, a.missing.map((m) => m.what).join('; ')).toBe(true);
    expect(Object.values(a.libs).map((l) => l.source)).toEqual(Array(5).fill('BNLAB_CUDA_LIB_DIRS'));
    expect(a.notes.join('\n')).toMatch(/BNLAB_CUDA_LIB_DIRS names .*missing-dir, which does not exist/);

    const b = find({ CUDA_HOME: toolkit }, all.o);
    expect(b.libs.cudnn).toMatchObject({ source: 'site-packages', path: join(site, 'nvidia', 'cudnn', 'lib', 'libcudnn.so.9'), version: '9.13.0.50' });
    expect(b.libs.nvrtc).toMatchObject({ source: 'site-packages', major: 13, version: '13.0' });
    expect(b.libs.cublasLt).toMatchObject({ source: 'site-packages', dir: join(site, 'nvidia', 'cu13', 'lib') });
    // no driver in a wheel: the toolkit folder is next in line for it
    expect(b.libs.driver).toMatchObject({ source: 'CUDA_HOME', via: `CUDA_HOME=${toolkit}` });

    const c = find({ CUDA_HOME: toolkit }, { ldconfig });
    expect(c.libs.cudnn).toMatchObject({ source: 'CUDA_HOME', version: '9.13.0' });

    const d = find({}, { ldconfig });
    expect(Object.values(d.libs).map((l) => l.source)).toEqual(Array(5).fill('ldconfig'));
    expect(d.libs.driver).toMatchObject({ path: join(ldDir, 'libcuda.so.1'), version: '580.95.05' });
    expect(d.searched.map((s) => s.dir)).toEqual([ldDir]); // the i386 entry is not this machine's
  });

  it('asks python for sys.path (BNLAB_PYTHON) and finds the wheels there', () => {
    const py = join(root, 'fake-python');
    writeFileSync(py, `#!/bin/sh\necho '["", "${site}"]'\n`);
    chmodSync(py, 0o755);
    const r = findCudaLibraries({ env: { BNLAB_PYTHON: py }, ldconfig: '', systemDirs: [], defaultCudaHome: null, procDir: noProc });
    expect(r.libs.cudnn?.source).toBe('site-packages');
    expect(r.libs.cudnn?.via).toBe(`python sys.path: ${site}`);

    const broken = findCudaLibraries({ env: { BNLAB_PYTHON: '/bin/false' }, ldconfig: '', systemDirs: [], defaultCudaHome: null, procDir: noProc });
    expect(broken.notes.join('\n')).toMatch(/could not ask \/bin\/false for its sys\.path .*were not searched \(set BNLAB_PYTHON/);
    // an active venv is read directly even when its python cannot be asked
    const venv = findCudaLibraries({ env: { BNLAB_PYTHON: '/bin/false', VIRTUAL_ENV: join(root, 'venv') }, ldconfig: '', systemDirs: [], defaultCudaHome: null, procDir: noProc });
    expect(venv.libs.cudnn?.source).toBe('site-packages');
  });

  it('prefers the newest major a source holds, within what the driver runs', () => {
    const r = find({}, { pythonPath: [site] });
    expect([r.libs.nvrtc?.name, r.libs.cublas?.name, r.libs.cublasLt?.name]).toEqual(['libnvrtc.so.13', 'libcublas.so.13', 'libcublasLt.so.13']);

    // a driver that runs CUDA 12 at most: the CUDA 13 wheels are passed over, and said so
    const proc = join(root, 'proc-550');
    touch(proc);
    writeFileSync(join(proc, 'version'), 'NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15  Tue Mar  5 22:23:56 UTC 2024\nGCC version:  gcc version 12.3.0\n');
    touch(join(proc, 'gpus', '0000:01:00.0'));
    writeFileSync(join(proc, 'gpus', '0000:01:00.0', 'information'), 'Model: \t\t NVIDIA H100 80GB HBM3\nIRQ: 42\n');
    const old = find({}, { pythonPath: [site], procDir: proc });
    expect(old.driver).toMatchObject({ present: true, version: '550.54.15', maxCudaMajor: 12, gpus: [{ id: '0000:01:00.0', model: 'NVIDIA H100 80GB HBM3' }] });
    expect([old.libs.nvrtc?.name, old.libs.nvrtc?.version, old.libs.cublas?.name, old.libs.cublasLt?.name]).toEqual(['libnvrtc.so.12', '12.4', 'libcublas.so.12', 'libcublasLt.so.12']);
    expect(old.notes.join('\n')).toMatch(/libnvrtc\.so\.13 \(site-packages\) skipped: the NVIDIA driver runs CUDA 12 at most/);
  });

  it('names a missing cuDNN sub-library, NVRTC builtins or cuBLASLt, each with its fix', () => {
    const dir = touch(join(root, 'partial'), 'libcuda.so.1', 'libnvrtc.so.13', 'libcublas.so.13', 'libcublasLt.so.12', ...CUDNN.filter((n) => n !== 'libcudnn_cnn.so.9' && n !== 'libcudnn_engines_precompiled.so.9'));
    const r = find({ BNLAB_CUDA_LIB_DIRS: dir });
    expect(r.ok).toBe(false);
    const by = (re: RegExp) => r.missing.find((m) => re.test(m.what));
    expect(by(/libcudnn_cnn/)).toMatchObject({ what: `libcudnn_cnn.so.9, libcudnn_engines_precompiled.so.9 next to ${dir}/libcudnn.so.9`, fix: expect.stringContaining('nvidia-cudnn-cu13') });
    expect(by(/libnvrtc-builtins/)).toMatchObject({ what: `libnvrtc-builtins.so.13.* next to ${dir}/libnvrtc.so.13`, fix: expect.stringContaining('pip install --force-reinstall nvidia-cuda-nvrtc') });
    // cuBLAS 13 with only a cuBLASLt 12 beside it: the major must match
    expect(by(/libcublasLt/)).toMatchObject({ what: 'libcublasLt.so.13 (cuBLASLt)', fix: expect.stringContaining('nvidia-cublas') });
    expect(r.missing).toHaveLength(3);
  });

  it('finding nothing names every piece, with a fix for each', () => {
    const r = find({});
    expect(r.ok).toBe(false);
    expect(r.libs).toEqual({});
    expect(r.missing.map((m) => m.what)).toEqual([
      'libcuda.so.1 (CUDA driver)',
      'libnvrtc.so.13 or libnvrtc.so.12 (NVRTC)',
      'libcublas.so.13 or libcublas.so.12 (cuBLAS)',
      'libcudnn.so.9 (cuDNN 9)',
    ]);
    expect(r.missing[0].fix).toMatch(/comes with the NVIDIA driver.*--gpus all.*BNLAB_CUDA_LIB_DIRS/);
    expect(r.missing.slice(1).map((m) => m.fix.split(' (')[0])).toEqual(['pip install nvidia-cuda-nvrtc', 'pip install nvidia-cublas', 'pip install nvidia-cudnn-cu13']);
    for (const m of r.missing) expect(m.fix).toMatch(/BNLAB_CUDA_LIB_DIRS/);
    expect(r.driver).toMatchObject({ present: false, gpus: [] });
  });

  it('reads the driver version and the ldconfig cache', () => {
    expect(parseDriverVersion('NVRM version: NVIDIA UNIX Open Kernel Module for x86_64  580.95.05  Release Build  (dvs-builder@U16-I3-B08-4-1)  Thu Sep 25 2025')).toBe('580.95.05');
    expect(parseDriverVersion('NVRM version: NVIDIA UNIX x86_64 Kernel Module  535.104.05  Sat Aug 19 01:15:15 UTC 2023')).toBe('535.104.05');
    expect(parseDriverVersion('garbage')).toBeNull();
    expect([cudaMajorForDriver('580.95.05'), cudaMajorForDriver('535.104.05'), cudaMajorForDriver('470.1'), cudaMajorForDriver(null)]).toEqual([13, 12, 11, null]);
    expect(parseLdconfig(ldconfig).map((e) => dirname(e.path))).toEqual(Array(5).fill(ldDir));
    expect(parseLdconfig('\tlibcudnn.so.9 (libc6,AArch64) => /usr/lib/aarch64-linux-gnu/libcudnn.so.9', 'arm64')).toEqual([{ name: 'libcudnn.so.9', path: '/usr/lib/aarch64-linux-gnu/libcudnn.so.9' }]);
  });

  it("doctor's section: each library with its path, source and version, each missing piece with its fix", () => {
    const found = cudaSection(find({ CUDA_HOME: toolkit }, { pythonPath: [site], ldconfig }));
    expect(found.lines[0]).toBe("CUDA (bnlab's own backend)  libraries found");
    expect(found.lines).toContain(`  libcudnn.so.9        ${join(site, 'nvidia', 'cudnn', 'lib', 'libcudnn.so.9')}  (site-packages, 9.13.0.50)`);
    expect(found.lines).toContain(`  libcuda.so.1         ${join(toolkit, 'lib64', 'libcuda.so.1')}  (CUDA_HOME)`);
    expect(found.fixes).toEqual([]);
    const none = cudaSection(find({}));
    expect(none.lines[0]).toBe("CUDA (bnlab's own backend)  unavailable — 4 pieces missing (see To fix)");
    expect(none.lines).toContain('  libcudnn.so.9        not found');
    expect(none.fixes[3]).toMatch(/^CUDA: libcudnn\.so\.9 \(cuDNN 9\) missing — convolutions\. Fix: pip install nvidia-cudnn-cu13/);
  });
});
