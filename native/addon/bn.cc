// The fused BatchNorm kernels of src/backend/native/bn.c (same math, same arguments: byte
// offsets into the wasm heap), compiled natively and split over OpenMP threads: the wasm
// module runs on one thread only. Each thread reduces a contiguous slice of a group's rows
// (float32 over blocks of 16 rows, float64 across blocks and threads), then the threads
// combine; the elementwise passes split rows the same way.
#include <omp.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "addon.h"

namespace {

constexpr int64_t BLOCK = 16;

inline void rowsOf(int64_t M, int t, int nt, int64_t& r0, int64_t& r1) {
  r0 = M * t / nt;
  r1 = M * (t + 1) / nt;
}

// The reductions of both passes: over rows [r0, r1), sums of p and q per channel, where
// term(r, c, p, q) gives them for row r; float32 within blocks of BLOCK rows, float64 across.
template <typename Term>
void blockedSums(int64_t r0, int64_t r1, int64_t C, double* s1, double* s2, Term term) {
  std::vector<float> f1(C), f2(C);
  for (int64_t b = r0; b < r1; b += BLOCK) {
    const int64_t e = b + BLOCK < r1 ? b + BLOCK : r1;
    std::fill(f1.begin(), f1.end(), 0.f);
    std::fill(f2.begin(), f2.end(), 0.f);
    for (int64_t r = b; r < e; r++) term(r, f1.data(), f2.data());
    for (int64_t c = 0; c < C; c++) s1[c] += f1[c], s2[c] += f2[c];
  }
}

// Sums of (x - x0) and its square (the forward's moments, shifted for conditioning).
void moments(const float* x, const float* x0, int64_t r0, int64_t r1, int64_t C, double* s1, double* s2) {
  blockedSums(r0, r1, C, s1, s2, [&](int64_t r, float* __restrict f1, float* __restrict f2) {
    const float* row = x + r * C;
    for (int64_t c = 0; c < C; c++) {
      const float v = row[c] - x0[c];
      f1[c] += v;
      f2[c] += v * v;
    }
  });
}

void applyRows(const float* x, float* y, const float* scale, const float* shift, int64_t r0, int64_t r1, int64_t C,
               bool relu) {
  for (int64_t r = r0; r < r1; r++) {
    const float* row = x + r * C;
    float* out = y + r * C;
    if (relu)
      for (int64_t c = 0; c < C; c++) { const float v = row[c] * scale[c] + shift[c]; out[c] = v > 0 ? v : 0; }
    else
      for (int64_t c = 0; c < C; c++) out[c] = row[c] * scale[c] + shift[c];
  }
}

void forward(const float* x, float* y, float* mean, float* var, const float* gamma, const float* beta, int64_t G,
             int64_t M, int64_t C, float eps, bool relu) {
  const int nt = omp_get_max_threads();
  std::vector<double> part(size_t(nt) * 2 * C);
  std::vector<float> scale(C), shift(C);
  for (int64_t g = 0; g < G; g++) {
    const float* xg = x + g * M * C;
    float* yg = y + g * M * C;
    std::fill(part.begin(), part.end(), 0.0);
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num(), n = omp_get_num_threads();
      int64_t r0, r1;
      rowsOf(M, t, n, r0, r1);
      moments(xg, xg, r0, r1, C, &part[size_t(t) * 2 * C], &part[size_t(t) * 2 * C + C]);
    }
    for (int64_t c = 0; c < C; c++) {
      double s1 = 0, s2 = 0;
      for (int t = 0; t < nt; t++) s1 += part[size_t(t) * 2 * C + c], s2 += part[size_t(t) * 2 * C + C + c];
      const double m = s1 / M;
      double v = s2 / M - m * m;
      if (v < 0) v = 0;
      const double mu = m + xg[c];
      mean[g * C + c] = float(mu);
      var[g * C + c] = float(v);
      const float rs = float(1.0 / std::sqrt(v + eps));
      scale[c] = gamma[c] * rs;
      shift[c] = float(beta[c] - mu * double(gamma[c] * rs));
    }
#pragma omp parallel num_threads(nt)
    {
      int64_t r0, r1;
      rowsOf(M, omp_get_thread_num(), omp_get_num_threads(), r0, r1);
      applyRows(xg, yg, scale.data(), shift.data(), r0, r1, C, relu);
    }
  }
}

void apply(const float* x, float* y, const float* scale, const float* shift, int64_t rows, int64_t C, bool relu) {
#pragma omp parallel
  {
    int64_t r0, r1;
    rowsOf(rows, omp_get_thread_num(), omp_get_num_threads(), r0, r1);
    applyRows(x, y, scale, shift, r0, r1, C, relu);
  }
}

// y = relu(x*scale + shift + z): a residual block's last BN with population statistics, its
// shortcut z and the ReLU in one pass instead of two (BnApply, then AddRelu). Each element rounds
// as there: x*scale + shift to float (the same expression as applyRows), then + z, then the ReLU.
void applyAddRelu(const float* x, const float* z, float* y, const float* scale, const float* shift, int64_t rows,
                  int64_t C) {
#pragma omp parallel
  {
    int64_t r0, r1;
    rowsOf(rows, omp_get_thread_num(), omp_get_num_threads(), r0, r1);
    for (int64_t r = r0; r < r1; r++) {
      const float *row = x + r * C, *zr = z + r * C;
      float* out = y + r * C;
      for (int64_t c = 0; c < C; c++) {
        const float v = row[c] * scale[c] + shift[c];
        const float w = v + zr[c];
        out[c] = w > 0 ? w : 0.f;
      }
    }
  }
}

// dz = dy * [gamma*xhat + beta > 0] (RELU) or dy; sums of dz and dz*xhat over rows [r0, r1).
// RELU is a template parameter so that both loops vectorise without a branch inside.
template <bool RELU>
void backwardSums(const float* __restrict x, const float* __restrict dy, const float* rstd, const float* shift,
                  const float* gamma, const float* beta, int64_t r0, int64_t r1, int64_t C, double* s1, double* s2) {
  blockedSums(r0, r1, C, s1, s2, [&](int64_t r, float* __restrict f1, float* __restrict f2) {
    const float* xr = x + r * C;
    const float* dr = dy + r * C;
    for (int64_t c = 0; c < C; c++) {
      const float xh = xr[c] * rstd[c] + shift[c];
      const float d = RELU ? ((gamma[c] * xh + beta[c]) > 0 ? dr[c] : 0.f) : dr[c];
      f1[c] += d;
      f2[c] += d * xh;
    }
  });
}

template <bool RELU>
void backwardDx(const float* __restrict x, const float* __restrict dy, float* __restrict dx, const float* rstd,
                const float* shift, const float* gamma, const float* beta, const float* a, const float* bx,
                const float* k0, int64_t r0, int64_t r1, int64_t C) {
  for (int64_t r = r0; r < r1; r++) {
    const float* xr = x + r * C;
    const float* dr = dy + r * C;
    float* o = dx + r * C;
    for (int64_t c = 0; c < C; c++) {
      float d = dr[c];
      if (RELU) d = (gamma[c] * (xr[c] * rstd[c] + shift[c]) + beta[c]) > 0 ? d : 0.f;
      o[c] = a[c] * d + bx[c] * xr[c] + k0[c];
    }
  }
}

void backward(const float* dy, const float* x, const float* mean, const float* var, const float* gamma,
              const float* beta, float* dx, float* dgamma, float* dbeta, int64_t G, int64_t M, int64_t C, float eps,
              bool relu) {
  const int nt = omp_get_max_threads();
  std::vector<double> part(size_t(nt) * 2 * C);
  std::vector<float> rstd(C), shift(C), a(C), bx(C), k0(C);
  for (int64_t c = 0; c < C; c++) dgamma[c] = 0, dbeta[c] = 0;
  for (int64_t g = 0; g < G; g++) {
    const float* xg = x + g * M * C;
    const float* dyg = dy + g * M * C;
    float* dxg = dx + g * M * C;
    for (int64_t c = 0; c < C; c++) {
      rstd[c] = float(1.0 / std::sqrt(double(var[g * C + c]) + eps));
      shift[c] = -mean[g * C + c] * rstd[c];  // xhat = x*rstd + shift
    }
    std::fill(part.begin(), part.end(), 0.0);
#pragma omp parallel num_threads(nt)
    {
      const int t = omp_get_thread_num();
      int64_t r0, r1;
      rowsOf(M, t, omp_get_num_threads(), r0, r1);
      double* p = &part[size_t(t) * 2 * C];
      if (relu)
        backwardSums<true>(xg, dyg, rstd.data(), shift.data(), gamma, beta, r0, r1, C, p, p + C);
      else
        backwardSums<false>(xg, dyg, rstd.data(), shift.data(), gamma, beta, r0, r1, C, p, p + C);
    }
    // dx = k*(dz - s1/M - xhat*s2/M), k = gamma*rstd; as dx = k*dz + bx*x + k0
    for (int64_t c = 0; c < C; c++) {
      double s1 = 0, s2 = 0;
      for (int t = 0; t < nt; t++) s1 += part[size_t(t) * 2 * C + c], s2 += part[size_t(t) * 2 * C + C + c];
      dbeta[c] += float(s1);
      dgamma[c] += float(s2);
      const float k = gamma[c] * rstd[c];
      const float m1 = float(s1 / M), m2 = float(s2 / M);
      a[c] = k;
      bx[c] = -k * m2 * rstd[c];
      k0[c] = -k * (m1 + m2 * shift[c]);
    }
#pragma omp parallel num_threads(nt)
    {
      int64_t r0, r1;
      rowsOf(M, omp_get_thread_num(), omp_get_num_threads(), r0, r1);
      if (relu)
        backwardDx<true>(xg, dyg, dxg, rstd.data(), shift.data(), gamma, beta, a.data(), bx.data(), k0.data(), r0, r1, C);
      else
        backwardDx<false>(xg, dyg, dxg, rstd.data(), shift.data(), gamma, beta, a.data(), bx.data(), k0.data(), r0, r1, C);
    }
  }
}

}  // namespace

// bnForward(heap, x, y, mean, var, gamma, beta, G, M, C, eps, relu)
napi_value BnForward(napi_env env, napi_callback_info info) {
  Args a(env, info, 12);
  if (!a.ok) return nullptr;
  char* h = a.heap(0);
  forward(a.f32(h, 1), a.f32(h, 2), a.f32(h, 3), a.f32(h, 4), a.f32(h, 5), a.f32(h, 6), a.i64(7), a.i64(8), a.i64(9),
          float(a.num(10)), a.num(11) != 0);
  return nullptr;
}

// bnBackward(heap, dy, x, mean, var, gamma, beta, dx, dgamma, dbeta, G, M, C, eps, relu)
napi_value BnBackward(napi_env env, napi_callback_info info) {
  Args a(env, info, 15);
  if (!a.ok) return nullptr;
  char* h = a.heap(0);
  backward(a.f32(h, 1), a.f32(h, 2), a.f32(h, 3), a.f32(h, 4), a.f32(h, 5), a.f32(h, 6), a.f32(h, 7), a.f32(h, 8),
           a.f32(h, 9), a.i64(10), a.i64(11), a.i64(12), float(a.num(13)), a.num(14) != 0);
  return nullptr;
}

// bnApply(heap, x, y, scale, shift, rows, C, relu)
napi_value BnApply(napi_env env, napi_callback_info info) {
  Args a(env, info, 8);
  if (!a.ok) return nullptr;
  char* h = a.heap(0);
  apply(a.f32(h, 1), a.f32(h, 2), a.f32(h, 3), a.f32(h, 4), a.i64(5), a.i64(6), a.num(7) != 0);
  return nullptr;
}

// bnApplyAddRelu(heap, x, z, y, scale, shift, rows, C)
napi_value BnApplyAddRelu(napi_env env, napi_callback_info info) {
  Args a(env, info, 8);
  if (!a.ok) return nullptr;
  char* h = a.heap(0);
  applyAddRelu(a.f32(h, 1), a.f32(h, 2), a.f32(h, 3), a.f32(h, 4), a.f32(h, 5), a.i64(6), a.i64(7));
  return nullptr;
}
