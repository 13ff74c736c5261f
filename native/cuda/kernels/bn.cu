// Ghost BatchNorm over G groups of M rows x C channels, the math of native/addon/bn.cc: per-group
// mean and biased variance from sums shifted by the group's first row (conditioning), y =
// x*scale + shift (+ReLU); backward sums dz and dz*xhat per group, dgamma/dbeta over groups, and
// dx = a*dz + bx*x + k0 per group and channel.
// Reduction order is fixed, so every run gives the same bits: a block owns 32 channels of one chunk
// of a group's rows; each of its 8 row lanes sums 16-row blocks in float and adds them in double
// (bn.cc's blocking), the lanes combine in a fixed tree, and the chunks in chunk order
// (bn_*_finalize). No float atomics. Launched by native/cuda/bn.cc.

#define LANES 8
#define ROWS 16
#define FOR_EACH(i, n) \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

__device__ inline long long lmin(long long a, long long b) { return a < b ? a : b; }

// Lanes' double sums -> lane 0, pairwise in a fixed order; stored to part[(g*P + p)*2C + c] (+C for s2).
__device__ void storeSums(double s1, double s2, double* part, long long C, long long c) {
  __shared__ double sh1[LANES][32], sh2[LANES][32];
  const int tx = threadIdx.x, ty = threadIdx.y;
  sh1[ty][tx] = s1;
  sh2[ty][tx] = s2;
  __syncthreads();
  for (int h = LANES / 2; h > 0; h /= 2) {
    if (ty < h) {
      sh1[ty][tx] += sh1[ty + h][tx];
      sh2[ty][tx] += sh2[ty + h][tx];
    }
    __syncthreads();
  }
  if (ty == 0 && c < C) {
    double* out = part + ((long long)blockIdx.z * gridDim.y + blockIdx.y) * 2 * C;
    out[c] = sh1[0][tx];
    out[C + c] = sh2[0][tx];
  }
}

// grid (ceil(C/32), P chunks, G), block (32, LANES): sums of x - x0 and its square per channel.
extern "C" __global__ void bn_fwd_partial(const float* x, double* part, long long M, long long C, long long chunk) {
  const long long c = blockIdx.x * 32LL + threadIdx.x;
  double s1 = 0.0, s2 = 0.0;
  if (c < C) {
    const float* xg = x + (long long)blockIdx.z * M * C;
    const float x0 = xg[c];
    const long long r1 = lmin(M, (blockIdx.y + 1LL) * chunk);
    for (long long b = blockIdx.y * chunk + threadIdx.y * ROWS; b < r1; b += LANES * ROWS) {
      float f1 = 0.f, f2 = 0.f;
      const long long e = lmin(r1, b + ROWS);
      for (long long r = b; r < e; r++) {
        const float v = xg[r * C + c] - x0;
        f1 += v;
        f2 += v * v;
      }
      s1 += (double)f1;
      s2 += (double)f2;
    }
  }
  storeSums(s1, s2, part, C, c);
}

// One thread per (group, channel): statistics and the affine y = x*scale + shift.
extern "C" __global__ void bn_fwd_finalize(const double* part, const float* x, float* mean, float* var,
                                           const float* gamma, const float* beta, float* coef, long long G,
                                           long long M, long long C, long long P, float eps) {
  FOR_EACH(i, G * C) {
    const long long g = i / C, c = i - g * C;
    double s1 = 0.0, s2 = 0.0;
    for (long long p = 0; p < P; p++) {
      s1 += part[(g * P + p) * 2 * C + c];
      s2 += part[(g * P + p) * 2 * C + C + c];
    }
    const double m = s1 / (double)M;
    double v = s2 / (double)M - m * m;
    if (v < 0.0) v = 0.0;
    const double mu = m + (double)x[g * M * C + c];
    mean[i] = (float)mu;
    var[i] = (float)v;
    const float gm = gamma ? gamma[c] : 1.f, bt = beta ? beta[c] : 0.f;
    const float rs = (float)(1.0 / sqrt(v + (double)eps));
    coef[i] = gm * rs;
    coef[G * C + i] = (float)((double)bt - mu * (double)(gm * rs));
  }
}

// y = x*scale + shift (+ReLU), scale/shift per (row / rowsPerGroup, channel).
extern "C" __global__ void bn_apply(const float* x, float* y, const float* scale, const float* shift,
                                    long long rowsPerGroup, long long C, long long n, int relu) {
  FOR_EACH(i, n) {
    const long long row = i / C, k = (row / rowsPerGroup) * C + (i - row * C);
    const float v = x[i] * scale[k] + shift[k];
    y[i] = relu ? (v > 0.f ? v : 0.f) : v;
  }
}

// y = relu(x*scale + shift + z), rounding as bn_apply then add_relu would.
extern "C" __global__ void bn_apply_add_relu(const float* x, const float* z, float* y, const float* scale,
                                             const float* shift, long long C, long long n) {
  FOR_EACH(i, n) {
    const long long c = i % C;
    const float v = x[i] * scale[c] + shift[c];
    const float w = v + z[i];
    y[i] = w > 0.f ? w : 0.f;
  }
}

__device__ inline float rstdOf(const float* var, long long k, float eps) {
  return (float)(1.0 / sqrt((double)var[k] + (double)eps));
}

// Same grid as bn_fwd_partial: sums of dz and dz*xhat, dz = dy masked by the forward's ReLU.
extern "C" __global__ void bn_bwd_partial(const float* x, const float* dy, const float* mean, const float* var,
                                          const float* gamma, const float* beta, double* part, long long M,
                                          long long C, long long chunk, float eps, int relu) {
  const long long c = blockIdx.x * 32LL + threadIdx.x;
  double s1 = 0.0, s2 = 0.0;
  if (c < C) {
    const long long off = (long long)blockIdx.z * M * C, k = (long long)blockIdx.z * C + c;
    const float rstd = rstdOf(var, k, eps), shift = -mean[k] * rstd;
    const float gm = gamma ? gamma[c] : 1.f, bt = beta ? beta[c] : 0.f;
    const long long r1 = lmin(M, (blockIdx.y + 1LL) * chunk);
    for (long long b = blockIdx.y * chunk + threadIdx.y * ROWS; b < r1; b += LANES * ROWS) {
      float f1 = 0.f, f2 = 0.f;
      const long long e = lmin(r1, b + ROWS);
      for (long long r = b; r < e; r++) {
        const float xh = x[off + r * C + c] * rstd + shift;
        const float d0 = dy[off + r * C + c];
        const float d = relu ? ((gm * xh + bt) > 0.f ? d0 : 0.f) : d0;
        f1 += d;
        f2 += d * xh;
      }
      s1 += (double)f1;
      s2 += (double)f2;
    }
  }
  storeSums(s1, s2, part, C, c);
}

// One thread per channel, over groups in order: dgamma/dbeta accumulate in float as bn.cc does,
// and each group's dx coefficients a, bx, k0 (plus rstd and shift for the ReLU mask) go to coef.
extern "C" __global__ void bn_bwd_finalize(const double* part, const float* mean, const float* var,
                                           const float* gamma, float* coef, float* dgamma, float* dbeta, long long G,
                                           long long M, long long C, long long P, float eps) {
  FOR_EACH(c, C) {
    const float gm = gamma ? gamma[c] : 1.f;
    float dg = 0.f, db = 0.f;
    for (long long g = 0; g < G; g++) {
      double s1 = 0.0, s2 = 0.0;
      for (long long p = 0; p < P; p++) {
        s1 += part[(g * P + p) * 2 * C + c];
        s2 += part[(g * P + p) * 2 * C + C + c];
      }
      db += (float)s1;
      dg += (float)s2;
      const long long k = g * C + c, GC = G * C;
      const float rstd = rstdOf(var, k, eps), shift = -mean[k] * rstd;
      const float kk = gm * rstd, m1 = (float)(s1 / (double)M), m2 = (float)(s2 / (double)M);
      coef[k] = kk;
      coef[GC + k] = -kk * m2 * rstd;
      coef[2 * GC + k] = -kk * (m1 + m2 * shift);
      coef[3 * GC + k] = rstd;
      coef[4 * GC + k] = shift;
    }
    if (dgamma) dgamma[c] = dg;
    if (dbeta) dbeta[c] = db;
  }
}

extern "C" __global__ void bn_bwd_dx(const float* x, const float* dy, const float* gamma, const float* beta,
                                     const float* coef, float* dx, long long GC, long long M, long long C, long long n,
                                     int relu) {
  FOR_EACH(i, n) {
    const long long row = i / C, c = i - row * C, k = (row / M) * C + c;
    float d = dy[i];
    if (relu) {
      const float gm = gamma ? gamma[c] : 1.f, bt = beta ? beta[c] : 0.f;
      d = (gm * (x[i] * coef[3 * GC + k] + coef[4 * GC + k]) + bt) > 0.f ? d : 0.f;
    }
    dx[i] = coef[k] * d + coef[GC + k] * x[i] + coef[2 * GC + k];
  }
}
