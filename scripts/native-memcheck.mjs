#!/usr/bin/env node
// Every kernel of bnlab's native addon (native/addon) and the JPEG decoder (native/jpeg) at
// awkward shapes: channel counts that are not a multiple of oneDNN's vector block (1, 3, 4, 6,
// 12, 20; 8 floats on AVX2, 16 on AVX-512), stride 2, 1x1 and 3x3, batch 32 (oneDNN 2.6.3's
// AVX2 NHWC overflow needed it, issue 27). Each output is compared with a float64 reference
// computed here, and every tensor sits between canary bands that must come back untouched.
// Plain JavaScript with no dependencies so that it runs under valgrind in reasonable time:
//   scripts/native-memcheck.sh  (valgrind on an AVX2 build; the forced-ISA runs without it)
// Usage: node scripts/native-memcheck.mjs [--addon FILE] [--jpeg FILE] [--threads N] [--quick]
// Exit 1 on any mismatch or touched canary, with one line per failure.
import { createRequire } from 'node:module';
import { readFileSync, existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const arg = (name, dflt) => {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
};
const require = createRequire(import.meta.url);
const addon = require(arg('--addon', `${root}native/addon/bnlab_native.node`));
const threads = Number(arg('--threads', '1'));
const quick = process.argv.includes('--quick');
addon.setThreads(threads);

// ---- a heap of tensors, each between canary bands ----
const CANARY = 0x5a;
const BAND = 256; // bytes before and after every tensor
class Heap {
  constructor(sizes) {
    this.offs = [];
    let off = BAND;
    for (const n of sizes) {
      this.offs.push(off);
      off += n * 4 + BAND;
      off = (off + 63) & ~63;
    }
    this.sizes = sizes;
    this.bytes = new Uint8Array(off + BAND).fill(CANARY);
    this.f = new Float32Array(this.bytes.buffer);
  }
  at(i) { return this.offs[i]; }
  view(i) { return this.f.subarray(this.offs[i] / 4, this.offs[i] / 4 + this.sizes[i]); }
  fill(i, seed, lo = -1, hi = 1) {
    const v = this.view(i);
    let s = seed >>> 0;
    for (let k = 0; k < v.length; k++) {
      s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
      v[k] = lo + (hi - lo) * (s / 2 ** 32);
    }
    return v;
  }
  /** Bytes outside every tensor that changed. */
  touched() {
    let bad = 0, start = 0;
    for (let i = 0; i <= this.offs.length; i++) {
      const end = i < this.offs.length ? this.offs[i] : this.bytes.length;
      for (let b = start; b < end; b++) if (this.bytes[b] !== CANARY) bad++;
      if (i < this.offs.length) start = this.offs[i] + this.sizes[i] * 4;
    }
    return bad;
  }
}

// ---- checks ----
const failures = [];
let checks = 0;
function close(name, got, want, tol) {
  checks++;
  let scale = 1e-12, err = 0;
  for (let i = 0; i < want.length; i++) scale = Math.max(scale, Math.abs(want[i]));
  for (let i = 0; i < want.length; i++) {
    const e = Math.abs(got[i] - want[i]);
    if (!(e <= err)) err = Number.isNaN(e) ? Infinity : e;
  }
  if (!(err / scale <= tol)) failures.push(`${name}: max error ${(err / scale).toExponential(2)} of the largest value (tolerance ${tol})`);
}
function guarded(name, heap) {
  checks++;
  const bad = heap.touched();
  if (bad) failures.push(`${name}: ${bad} bytes outside its tensors were written`);
}

// ---- convolutions: float64 references in NHWC / HWIO ----
function convRef(x, w, d) {
  const [B, H, W, ci, FH, FW, co, OH, OW, sh, sw, pt, pl] = d;
  const y = new Float64Array(B * OH * OW * co);
  for (let b = 0; b < B; b++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) for (let kh = 0; kh < FH; kh++) {
    const ih = oh * sh - pt + kh;
    if (ih < 0 || ih >= H) continue;
    for (let kw = 0; kw < FW; kw++) {
      const iw = ow * sw - pl + kw;
      if (iw < 0 || iw >= W) continue;
      const xo = ((b * H + ih) * W + iw) * ci, yo = ((b * OH + oh) * OW + ow) * co;
      for (let c = 0; c < ci; c++) {
        const xv = x[xo + c], wo = ((kh * FW + kw) * ci + c) * co;
        for (let o = 0; o < co; o++) y[yo + o] += xv * w[wo + o];
      }
    }
  }
  return y;
}
function convGradsRef(x, w, dy, d) {
  const [B, H, W, ci, FH, FW, co, OH, OW, sh, sw, pt, pl] = d;
  const dx = new Float64Array(B * H * W * ci), dw = new Float64Array(FH * FW * ci * co);
  for (let b = 0; b < B; b++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) for (let kh = 0; kh < FH; kh++) {
    const ih = oh * sh - pt + kh;
    if (ih < 0 || ih >= H) continue;
    for (let kw = 0; kw < FW; kw++) {
      const iw = ow * sw - pl + kw;
      if (iw < 0 || iw >= W) continue;
      const xo = ((b * H + ih) * W + iw) * ci, yo = ((b * OH + oh) * OW + ow) * co;
      for (let c = 0; c < ci; c++) {
        const wo = ((kh * FW + kw) * ci + c) * co;
        let s = 0;
        for (let o = 0; o < co; o++) {
          s += dy[yo + o] * w[wo + o];
          dw[wo + o] += x[xo + c] * dy[yo + o];
        }
        dx[xo + c] += s;
      }
    }
  }
  return { dx, dw };
}

function convCases() {
  const out = [];
  const chans = quick ? [[1, 4], [4, 8], [3, 6], [12, 20]] : [[1, 4], [3, 6], [4, 8], [6, 12], [12, 20], [20, 3], [4, 4], [8, 16]];
  const shapes = [[1, 1, 0], [1, 2, 0], [3, 1, 1], [3, 2, 1]];
  // 14x14 -> 7x7 at stride 2 is where oneDNN 2.6.3's AVX2 NHWC kernel overflowed (9x7 did not)
  for (const [H, W] of quick ? [[14, 14]] : [[14, 14], [9, 7]]) for (const [F, s, p] of shapes) for (const [ci, co] of chans) {
    const B = 32;
    const OH = Math.floor((H + 2 * p - F) / s) + 1, OW = Math.floor((W + 2 * p - F) / s) + 1;
    out.push([B, H, W, ci, F, F, co, OH, OW, s, s, p, p, p, p]);
  }
  return out;
}

function checkConv(d) {
  const [B, H, W, ci, FH, FW, co, OH, OW] = d;
  const nx = B * H * W * ci, nw = FH * FW * ci * co, ny = B * OH * OW * co;
  const dims = Int32Array.from(d);
  const name = (k) => `conv ${['forward', 'backward data', 'backward weights'][k]} [${d.join(',')}] ${addon.impl(k, dims)}`;
  // forward: (x, w, y)
  let h = new Heap([nx, nw, ny]);
  const x = Float64Array.from(h.fill(0, 1)), w = Float64Array.from(h.fill(1, 2));
  addon.conv(0, h.bytes, h.at(0), h.at(1), h.at(2), dims, 0);
  close(name(0), h.view(2), convRef(x, w, d), 1e-5);
  guarded(name(0), h);
  const g = new Heap([ny]);
  const dy = Float64Array.from(g.fill(0, 3));
  const ref = convGradsRef(x, w, dy, d);
  // backward data: (dy, w, dx)
  h = new Heap([ny, nw, nx]);
  h.view(0).set(dy), h.view(1).set(w);
  addon.conv(1, h.bytes, h.at(0), h.at(1), h.at(2), dims, 11);
  close(name(1), h.view(2), ref.dx, 1e-5);
  guarded(name(1), h);
  // backward weights: (x, dy, dw)
  h = new Heap([nx, ny, nw]);
  h.view(0).set(x), h.view(1).set(dy);
  addon.conv(2, h.bytes, h.at(0), h.at(1), h.at(2), dims, 11);
  close(name(2), h.view(2), ref.dw, 1e-5);
  guarded(name(2), h);
}

// ---- BatchNorm: G groups of M rows by C channels ----
function bnRef(x, gamma, beta, G, M, C, eps, relu) {
  const y = new Float64Array(x.length), mean = new Float64Array(G * C), vr = new Float64Array(G * C);
  for (let g = 0; g < G; g++) for (let c = 0; c < C; c++) {
    let s = 0, q = 0;
    for (let r = 0; r < M; r++) s += x[(g * M + r) * C + c];
    const m = s / M;
    for (let r = 0; r < M; r++) q += (x[(g * M + r) * C + c] - m) ** 2;
    mean[g * C + c] = m, vr[g * C + c] = q / M;
    for (let r = 0; r < M; r++) {
      const i = (g * M + r) * C + c, v = gamma[c] * (x[i] - m) / Math.sqrt(q / M + eps) + beta[c];
      y[i] = relu ? Math.max(v, 0) : v;
    }
  }
  return { y, mean, vr };
}
function bnBackRef(dy, x, mean, vr, gamma, beta, G, M, C, eps, relu) {
  const dx = new Float64Array(x.length), dg = new Float64Array(C), db = new Float64Array(C);
  for (let g = 0; g < G; g++) for (let c = 0; c < C; c++) {
    const rs = 1 / Math.sqrt(vr[g * C + c] + eps);
    let s1 = 0, s2 = 0;
    const dz = new Float64Array(M), xh = new Float64Array(M);
    for (let r = 0; r < M; r++) {
      const i = (g * M + r) * C + c;
      xh[r] = (x[i] - mean[g * C + c]) * rs;
      dz[r] = relu && gamma[c] * xh[r] + beta[c] <= 0 ? 0 : dy[i];
      s1 += dz[r], s2 += dz[r] * xh[r];
    }
    db[c] += s1, dg[c] += s2;
    for (let r = 0; r < M; r++) dx[(g * M + r) * C + c] = gamma[c] * rs * (dz[r] - s1 / M - xh[r] * s2 / M);
  }
  return { dx, dg, db };
}

function checkBn(G, M, C, relu) {
  const eps = 1e-5, n = G * M * C, tag = `[G ${G} M ${M} C ${C}${relu ? ' relu' : ''}]`;
  // forward(x, y, mean, var, gamma, beta)
  const h = new Heap([n, n, G * C, G * C, C, C]);
  const x = Float64Array.from(h.fill(0, 5, -2, 3)), gamma = Float64Array.from(h.fill(4, 6, 0.5, 1.5)), beta = Float64Array.from(h.fill(5, 7));
  addon.bnForward(h.bytes, h.at(0), h.at(1), h.at(2), h.at(3), h.at(4), h.at(5), G, M, C, eps, relu ? 1 : 0);
  const f = bnRef(x, gamma, beta, G, M, C, eps, relu);
  close(`bnForward y ${tag}`, h.view(1), f.y, 1e-5);
  close(`bnForward mean ${tag}`, h.view(2), f.mean, 1e-5);
  close(`bnForward var ${tag}`, h.view(3), f.vr, 1e-5);
  guarded(`bnForward ${tag}`, h);
  // backward(dy, x, mean, var, gamma, beta, dx, dgamma, dbeta) with the forward's float32 statistics
  const b = new Heap([n, n, G * C, G * C, C, C, n, C, C]);
  const dy = Float64Array.from(b.fill(0, 8));
  b.view(1).set(x), b.view(2).set(h.view(2)), b.view(3).set(h.view(3)), b.view(4).set(gamma), b.view(5).set(beta);
  addon.bnBackward(b.bytes, b.at(0), b.at(1), b.at(2), b.at(3), b.at(4), b.at(5), b.at(6), b.at(7), b.at(8), G, M, C, eps, relu ? 1 : 0);
  const r = bnBackRef(dy, x, Float64Array.from(h.view(2)), Float64Array.from(h.view(3)), gamma, beta, G, M, C, eps, relu);
  close(`bnBackward dx ${tag}`, b.view(6), r.dx, 1e-4);
  close(`bnBackward dgamma ${tag}`, b.view(7), r.dg, 1e-5);
  close(`bnBackward dbeta ${tag}`, b.view(8), r.db, 1e-5);
  guarded(`bnBackward ${tag}`, b);
  // apply(x, y, scale, shift) and applyAddRelu(x, z, y, scale, shift)
  const rows = G * M;
  const a = new Heap([n, n, C, C, n]);
  a.view(0).set(x);
  const sc = Float64Array.from(a.fill(2, 9)), sf = Float64Array.from(a.fill(3, 10)), z = Float64Array.from(a.fill(4, 11));
  addon.bnApply(a.bytes, a.at(0), a.at(1), a.at(2), a.at(3), rows, C, relu ? 1 : 0);
  close(`bnApply ${tag}`, a.view(1), x.map((v, i) => { const u = v * sc[i % C] + sf[i % C]; return relu ? Math.max(u, 0) : u; }), 1e-6);
  addon.bnApplyAddRelu(a.bytes, a.at(0), a.at(4), a.at(1), a.at(2), a.at(3), rows, C);
  close(`bnApplyAddRelu ${tag}`, a.view(1), x.map((v, i) => Math.max(v * sc[i % C] + sf[i % C] + z[i], 0)), 1e-6);
  guarded(`bnApply ${tag}`, a);
}

// ---- the small kernels ----
function checkSmall(n, C) {
  const tag = `[n ${n}]`;
  const h = new Heap([n, n, n, n, n]);
  const w = Float64Array.from(h.fill(0, 12)), g = Float64Array.from(h.fill(1, 13)), v = Float64Array.from(h.fill(2, 14));
  addon.sgd(h.bytes, h.at(0), h.at(1), h.at(2), h.at(3), h.at(4), n, 0.1, 0.9, 1e-4, 1);
  const d = w.map((wi, i) => g[i] + 1e-4 * wi), vn = d.map((di, i) => 0.9 * v[i] + di);
  close(`sgd v ${tag}`, h.view(4), vn, 1e-6);
  close(`sgd w ${tag}`, h.view(3), w.map((wi, i) => wi - 0.1 * (d[i] + 0.9 * vn[i])), 1e-6);
  guarded(`sgd ${tag}`, h);
  const e = new Heap([n, n, n]);
  const a = Float64Array.from(e.fill(0, 15)), b = Float64Array.from(e.fill(1, 16));
  addon.addRelu(e.bytes, e.at(0), e.at(1), e.at(2), n);
  close(`addRelu ${tag}`, e.view(2), a.map((x, i) => Math.max(x + b[i], 0)), 1e-6);
  addon.reluGrad(e.bytes, e.at(0), e.at(1), e.at(2), n);
  close(`reluGrad ${tag}`, e.view(2), a.map((x, i) => (b[i] > 0 ? x : 0)), 0);
  addon.add(e.bytes, e.at(0), e.at(1), e.at(2), n);
  close(`add ${tag}`, e.view(2), a.map((x, i) => x + b[i]), 1e-6);
  guarded(`eltwise ${tag}`, e);
  // ema(mean, var, obsMean, obsVar, meanOut, varOut, C, G, decay, counts)
  const G = 3;
  const m = new Heap([C, C, G * C, G * C, C, C]);
  const mu = Float64Array.from(m.fill(0, 17)), vr = Float64Array.from(m.fill(1, 18, 0.5, 2));
  const om = Float64Array.from(m.fill(2, 19)), ov = Float64Array.from(m.fill(3, 20, 0.1, 3));
  const counts = Float64Array.from([32, 32, 7]);
  addon.ema(m.bytes, m.at(0), m.at(1), m.at(2), m.at(3), m.at(4), m.at(5), C, G, 0.9, counts);
  const em = new Float64Array(C), ev = new Float64Array(C);
  for (let c = 0; c < C; c++) {
    let sm = 0, sv = 0;
    for (let k = 0; k < G; k++) sm += om[k * C + c], sv += ov[k * C + c] * counts[k] / (counts[k] - 1);
    em[c] = 0.9 * mu[c] + 0.1 * sm / G, ev[c] = 0.9 * vr[c] + 0.1 * sv / G;
  }
  close(`ema mean [C ${C}]`, m.view(4), em, 1e-6);
  close(`ema var [C ${C}]`, m.view(5), ev, 1e-6);
  guarded(`ema [C ${C}]`, m);
}

function checkPool(B, H, W, C) {
  const tag = `[B ${B} H ${H} W ${W} C ${C}]`;
  const HW = H * W;
  const gp = new Heap([B * HW * C, B * C, B * HW * C]);
  const x = Float64Array.from(gp.fill(0, 21));
  addon.gap(gp.bytes, gp.at(0), gp.at(1), B, HW, C);
  const y = new Float64Array(B * C);
  for (let b = 0; b < B; b++) for (let p = 0; p < HW; p++) for (let c = 0; c < C; c++) y[b * C + c] += x[(b * HW + p) * C + c] / HW;
  close(`gap ${tag}`, gp.view(1), y, 1e-5);
  addon.gapGrad(gp.bytes, gp.at(1), gp.at(2), B, HW, C);
  const yf = gp.view(1);
  close(`gapGrad ${tag}`, gp.view(2), Float64Array.from({ length: B * HW * C }, (_, i) => yf[Math.floor(i / (HW * C)) * C + (i % C)] / HW), 1e-6);
  guarded(`gap ${tag}`, gp);
  // maxPoolGrad(x, dy, dx, B, H, W, C, OH, OW, FH, FW, sh, sw, pt, pl): 3x3 stride 2 pad 1
  const OH = Math.floor((H + 2 - 3) / 2) + 1, OW = Math.floor((W + 2 - 3) / 2) + 1;
  const mp = new Heap([B * HW * C, B * OH * OW * C, B * HW * C]);
  const xm = Float64Array.from(mp.fill(0, 22)), dy = Float64Array.from(mp.fill(1, 23));
  addon.maxPoolGrad(mp.bytes, mp.at(0), mp.at(1), mp.at(2), B, H, W, C, OH, OW, 3, 3, 2, 2, 1, 1);
  const dx = new Float64Array(B * HW * C);
  for (let b = 0; b < B; b++) for (let oh = 0; oh < OH; oh++) for (let ow = 0; ow < OW; ow++) for (let c = 0; c < C; c++) {
    let best = -Infinity, at = -1;
    for (let r = oh * 2 - 1; r < oh * 2 + 2; r++) for (let q = ow * 2 - 1; q < ow * 2 + 2; q++) {
      if (r < 0 || r >= H || q < 0 || q >= W) continue;
      const i = ((b * H + r) * W + q) * C + c;
      if (xm[i] > best) best = xm[i], at = i;
    }
    if (at >= 0) dx[at] += dy[((b * OH + oh) * OW + ow) * C + c];
  }
  close(`maxPoolGrad ${tag}`, mp.view(2), dx, 1e-6);
  guarded(`maxPoolGrad ${tag}`, mp);
}

function checkMatmul(batchA, batchB, M, N, K, tA, tB) {
  const tag = `[${batchA}x${batchB} ${M}x${K} * ${K}x${N}${tA ? ' tA' : ''}${tB ? ' tB' : ''}]`;
  const batch = Math.max(batchA, batchB);
  const h = new Heap([batchA * M * K, batchB * K * N, batch * M * N]);
  const A = Float64Array.from(h.fill(0, 24)), Bm = Float64Array.from(h.fill(1, 25));
  addon.matmul(h.bytes, h.at(0), h.at(1), h.at(2), batchA, batchB, M, N, K, tA ? 1 : 0, tB ? 1 : 0);
  const C = new Float64Array(batch * M * N);
  for (let i = 0; i < batch; i++) {
    const ao = (batchA === 1 ? 0 : i) * M * K, bo = (batchB === 1 ? 0 : i) * K * N;
    for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += A[ao + (tA ? k * M + m : m * K + k)] * Bm[bo + (tB ? n * K + k : k * N + n)];
      C[i * M * N + m * N + n] = s;
    }
  }
  close(`matmul ${tag}`, h.view(2), C, 1e-5);
  guarded(`matmul ${tag}`, h);
}

// ---- the JPEG decoder: the fixtures, cropped and resized at odd sizes ----
function checkJpeg() {
  const path = arg('--jpeg', `${root}native/jpeg/bnlab_jpeg.node`);
  if (!existsSync(path)) {
    failures.push(`jpeg: ${path} not built (apt-get install -y libjpeg-dev && npm run build:native)`);
    return;
  }
  const jpeg = require(path);
  const file = `${root}test/fixtures/memcheck.jpg`;
  const src = new Uint8Array(readFileSync(file));
  const whole = jpeg.decode(src, null, 37, 23, null, false, false, null);
  checks++;
  if (whole.width !== 37 || whole.height !== 23 || whole.data.length !== 37 * 23 * 3) failures.push(`jpeg: whole image decoded to ${whole.width}x${whole.height}`);
  for (const [box, out, win, flip, shrink] of [
    [[3, 5, 41, 29], [13, 11], null, false, false],
    [[1, 0, 60, 47], [7, 5], [1, 1, 5, 3], true, true],
    [[0, 0, 64, 48], [224, 224], [16, 16, 192, 192], false, true],
  ]) {
    const r = jpeg.decode(src, box, out[0], out[1], win, flip, shrink, [0.485, 0.456, 0.406, 0.229, 0.224, 0.225]);
    checks++;
    const [w, h] = win ? [win[2], win[3]] : out;
    if (r.width !== w || r.height !== h || r.data.length !== w * h * 3 || r.data.some((v) => !Number.isFinite(v)))
      failures.push(`jpeg: box ${box} -> ${out} window ${win}: got ${r.width}x${r.height}`);
  }
  try {
    jpeg.decode(src.subarray(0, 200), null, 8, 8, null, false, false, null);
    failures.push('jpeg: a truncated file decoded without an error');
  } catch {
    checks++;
  }
}

const t0 = Date.now();
for (const d of convCases()) checkConv(d);
for (const C of [1, 3, 4, 6, 12, 20]) {
  checkBn(3, 37, C, C % 2 === 0);
  checkSmall(1000 + C, C);
  checkPool(3, 7, 9, C);
}
checkBn(2, 5000, 20, true); // the rows split over threads
checkSmall(70001, 20); // the multi-threaded elementwise path (> 16k)
checkPool(4, 70, 60, 6); // the multi-threaded pooling path (> 64k)
for (const [a, b, M, N, K, tA, tB] of [[1, 1, 3, 10, 20, 0, 0], [2, 2, 5, 3, 7, 1, 0], [1, 3, 6, 4, 12, 0, 1], [2, 1, 1, 20, 6, 1, 1]]) checkMatmul(a, b, M, N, K, tA, tB);
checkJpeg();
const isa = process.env.ONEDNN_MAX_CPU_ISA ?? 'native';
console.log(`native-memcheck: ${checks} checks, ${failures.length} failed (${threads} thread${threads === 1 ? '' : 's'}, ONEDNN_MAX_CPU_ISA ${isa}, ${((Date.now() - t0) / 1000).toFixed(1)} s)`);
for (const f of failures) console.log(`  FAIL ${f}`);
process.exit(failures.length ? 1 : 0);
