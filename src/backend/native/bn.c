// Fused BatchNorm kernels for bnlab's wasm backend (build: scripts/build-wasm.sh).
// The module imports tfjs-backend-wasm's own linear memory, so it reads and writes tensors
// in place: no copies. It therefore owns no memory at all: no static data, no stack (every
// function only uses scalar locals), scratch space comes from the caller (tfjs' malloc).
//
// Layout: x is [G*M, C] row-major (NHWC flattened), G independent groups of M rows each.
// Forward  (per group g, channel c): mean, biased var over the group's M rows;
//          y = act(gamma*(x-mean)*rstd + beta), act = identity or relu, rstd = 1/sqrt(var+eps).
// Backward: with xhat = (x-mean)*rstd recomputed from x, and dz = dy*[y>0] (relu) or dy:
//          dbeta = sum dz, dgamma = sum dz*xhat  (per group, then summed over groups)
//          dx = gamma*rstd*(dz - dbeta_g/M - xhat*dgamma_g/M)
// Reductions accumulate in float64, per row block in float32 (blocks of <= 16 rows, exact
// enough: 16 terms), so the inner loops vectorise as f32x4.
#include <wasm_simd128.h>

typedef unsigned int u32;
#define BLOCK 16u

static inline float rsqrt_(double v) { return (float)(1.0 / __builtin_sqrt(v)); }

// y = act(x*scale + shift) over rows of C channels: the shared second pass of every forward.
static inline void apply_rows(const float* x, float* y, const float* scale, const float* shift, u32 rows, u32 C, u32 relu) {
  if (relu) {
    for (u32 r = 0; r < rows; r++) {
      const float* row = x + (unsigned long)r * C;
      float* out = y + (unsigned long)r * C;
      for (u32 c = 0; c < C; c++) { float v = row[c] * scale[c] + shift[c]; out[c] = v > 0 ? v : 0; }
    }
  } else {
    for (u32 r = 0; r < rows; r++) {
      const float* row = x + (unsigned long)r * C;
      float* out = y + (unsigned long)r * C;
      for (u32 c = 0; c < C; c++) out[c] = row[c] * scale[c] + shift[c];
    }
  }
}

// One pass over x for the moments, shifted by the group's first row, which keeps
// E[x^2]-E[x]^2 well conditioned when |mean| >> std. gamma, beta: never null (ones/zeros).
__attribute__((export_name("bn_forward")))
void bn_forward(const float* x, float* y, float* mean, float* var, const float* gamma, const float* beta,
                u32 G, u32 M, u32 C, float eps, u32 relu, double* s1, double* s2, float* f1, float* f2,
                float* scale, float* shift, float* x0) {
  for (u32 g = 0; g < G; g++) {
    const float* xg = x + (unsigned long)g * M * C;
    float* yg = y + (unsigned long)g * M * C;
    // shift: first row of the group
    for (u32 c = 0; c < C; c++) { x0[c] = xg[c]; s1[c] = 0; s2[c] = 0; }
    for (u32 r0 = 0; r0 < M; r0 += BLOCK) {
      u32 r1 = r0 + BLOCK < M ? r0 + BLOCK : M;
      for (u32 c = 0; c < C; c++) { f1[c] = 0; f2[c] = 0; }
      for (u32 r = r0; r < r1; r++) {
        const float* row = xg + (unsigned long)r * C;
        for (u32 c = 0; c < C; c++) { float v = row[c] - x0[c]; f1[c] += v; f2[c] += v * v; }
      }
      for (u32 c = 0; c < C; c++) { s1[c] += f1[c]; s2[c] += f2[c]; }
    }
    for (u32 c = 0; c < C; c++) {
      double m = s1[c] / M;
      double v = s2[c] / M - m * m;
      if (v < 0) v = 0;
      double mu = m + x0[c];
      mean[g * C + c] = (float)mu;
      var[g * C + c] = (float)v;
      float rs = rsqrt_(v + eps);
      float ga = gamma[c], be = beta[c];
      scale[c] = ga * rs;
      shift[c] = (float)(be - mu * (double)(ga * rs));
    }
    apply_rows(xg, yg, scale, shift, M, C, relu);
  }
}

// Normalization with given statistics (population / frozen): y = act(x*scale + shift) where the
// caller precomputed scale = gamma*rstd, shift = beta - mean*gamma*rstd. rows = N*H*W.
__attribute__((export_name("bn_apply")))
void bn_apply(const float* x, float* y, const float* scale, const float* shift, u32 rows, u32 C, u32 relu) {
  apply_rows(x, y, scale, shift, rows, C, relu);
}

// Backward of bn_forward. mean/var: the forward's statistics [G, C]. dgamma/dbeta: [C], summed
// over groups (the affine parameters are shared). scratch as in bn_forward.
__attribute__((export_name("bn_backward")))
void bn_backward(const float* dy, const float* x, const float* mean, const float* var, const float* gamma,
                 const float* beta, float* dx, float* dgamma, float* dbeta, u32 G, u32 M, u32 C, float eps, u32 relu,
                 double* s1, double* s2, float* f1, float* f2, float* rstd, float* shift, float* a) {
  for (u32 c = 0; c < C; c++) { dgamma[c] = 0; dbeta[c] = 0; }
  for (u32 g = 0; g < G; g++) {
    const float* xg = x + (unsigned long)g * M * C;
    const float* dyg = dy + (unsigned long)g * M * C;
    float* dxg = dx + (unsigned long)g * M * C;
    for (u32 c = 0; c < C; c++) {
      float rs = rsqrt_((double)var[g * C + c] + eps);
      rstd[c] = rs;
      shift[c] = -mean[g * C + c] * rs;  // xhat = x*rstd + shift
      s1[c] = 0; s2[c] = 0;
    }
    // pass 1: sum dz, sum dz*xhat
    for (u32 r0 = 0; r0 < M; r0 += BLOCK) {
      u32 r1 = r0 + BLOCK < M ? r0 + BLOCK : M;
      for (u32 c = 0; c < C; c++) { f1[c] = 0; f2[c] = 0; }
      if (relu) {
        for (u32 r = r0; r < r1; r++) {
          const float* xr = xg + (unsigned long)r * C;
          const float* dr = dyg + (unsigned long)r * C;
          u32 c = 0;
          for (; c + 4 <= C; c += 4) {
            v128_t xh = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(xr + c), wasm_v128_load(rstd + c)), wasm_v128_load(shift + c));
            v128_t z = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(gamma + c), xh), wasm_v128_load(beta + c));
            v128_t d = wasm_v128_and(wasm_v128_load(dr + c), wasm_f32x4_gt(z, wasm_f32x4_splat(0.0f)));
            wasm_v128_store(f1 + c, wasm_f32x4_add(wasm_v128_load(f1 + c), d));
            wasm_v128_store(f2 + c, wasm_f32x4_add(wasm_v128_load(f2 + c), wasm_f32x4_mul(d, xh)));
          }
          for (; c < C; c++) {
            float xh = xr[c] * rstd[c] + shift[c];
            float d = (gamma[c] * xh + beta[c]) > 0 ? dr[c] : 0.0f;
            f1[c] += d; f2[c] += d * xh;
          }
        }
      } else {
        for (u32 r = r0; r < r1; r++) {
          const float* xr = xg + (unsigned long)r * C;
          const float* dr = dyg + (unsigned long)r * C;
          u32 c = 0;
          for (; c + 4 <= C; c += 4) {
            v128_t xh = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(xr + c), wasm_v128_load(rstd + c)), wasm_v128_load(shift + c));
            v128_t d = wasm_v128_load(dr + c);
            wasm_v128_store(f1 + c, wasm_f32x4_add(wasm_v128_load(f1 + c), d));
            wasm_v128_store(f2 + c, wasm_f32x4_add(wasm_v128_load(f2 + c), wasm_f32x4_mul(d, xh)));
          }
          for (; c < C; c++) { float xh = xr[c] * rstd[c] + shift[c]; f1[c] += dr[c]; f2[c] += dr[c] * xh; }
        }
      }
      for (u32 c = 0; c < C; c++) { s1[c] += f1[c]; s2[c] += f2[c]; }
    }
    // dx = k*(dz - s1/M - xhat*s2/M), k = gamma*rstd; as dx = k*dz + b*x + e
    for (u32 c = 0; c < C; c++) {
      dbeta[c] += (float)s1[c];
      dgamma[c] += (float)s2[c];
      float ga = gamma[c];
      float k = ga * rstd[c];
      float m1 = (float)(s1[c] / M), m2 = (float)(s2[c] / M);
      a[c] = k;
      f1[c] = -k * m2 * rstd[c];            // coefficient of x
      f2[c] = -k * (m1 + m2 * shift[c]);    // constant
    }
    if (relu) {
      for (u32 r = 0; r < M; r++) {
        const float* xr = xg + (unsigned long)r * C;
        const float* dr = dyg + (unsigned long)r * C;
        float* o = dxg + (unsigned long)r * C;
        u32 c = 0;
        for (; c + 4 <= C; c += 4) {
          v128_t xv = wasm_v128_load(xr + c);
          v128_t xh = wasm_f32x4_add(wasm_f32x4_mul(xv, wasm_v128_load(rstd + c)), wasm_v128_load(shift + c));
          v128_t z = wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(gamma + c), xh), wasm_v128_load(beta + c));
          v128_t d = wasm_v128_and(wasm_v128_load(dr + c), wasm_f32x4_gt(z, wasm_f32x4_splat(0.0f)));
          v128_t out = wasm_f32x4_add(wasm_f32x4_add(wasm_f32x4_mul(wasm_v128_load(a + c), d), wasm_f32x4_mul(wasm_v128_load(f1 + c), xv)), wasm_v128_load(f2 + c));
          wasm_v128_store(o + c, out);
        }
        for (; c < C; c++) {
          float xh = xr[c] * rstd[c] + shift[c];
          float d = (gamma[c] * xh + beta[c]) > 0 ? dr[c] : 0.0f;
          o[c] = a[c] * d + f1[c] * xr[c] + f2[c];
        }
      }
    } else {
      for (u32 r = 0; r < M; r++) {
        const float* xr = xg + (unsigned long)r * C;
        const float* dr = dyg + (unsigned long)r * C;
        float* o = dxg + (unsigned long)r * C;
        for (u32 c = 0; c < C; c++) o[c] = a[c] * dr[c] + f1[c] * xr[c] + f2[c];
      }
    }
  }
}
