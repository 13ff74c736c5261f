// Pooling over NHWC, the math of native/addon/eltwise.cc (global average pooling and its
// gradient) and pool.cc (max pooling's gradient), plus the max pooling forward it pairs with.
// Max pooling pads with -inf (padding never wins) and propagates NaN (as the fake device,
// src/backend/cuda/fake-device.ts). Each window's gradient goes to its first maximum in row-major
// window order (strict >, as tfjs and PyTorch), and a window with nothing above -inf sends none.
// The gradient is a gather over dx positions summing in the order pool.cc adds (output row, then
// column): same bits, no atomics. Launched by native/cuda/bn.cc.

#define FOR_EACH(i, n) \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

__device__ inline long long lmax(long long a, long long b) { return a > b ? a : b; }
__device__ inline long long lmin(long long a, long long b) { return a < b ? a : b; }

// One thread per (image, channel): sum over HW in order, as eltwise.cc.
extern "C" __global__ void gap(const float* x, float* y, long long B, long long HW, long long C) {
  FOR_EACH(i, B * C) {
    const long long b = i / C, c = i - b * C;
    float s = 0.f;
    for (long long p = 0; p < HW; p++) s += x[(b * HW + p) * C + c];
    y[i] = s / (float)HW;
  }
}

extern "C" __global__ void gap_grad(const float* dy, float* dx, long long HW, long long C, long long n) {
  FOR_EACH(i, n) {
    const long long c = i % C, b = i / (HW * C);
    dx[i] = dy[b * C + c] / (float)HW;
  }
}

extern "C" __global__ void max_pool(const float* x, float* y, long long B, long long H, long long W, long long C,
                                    long long OH, long long OW, long long FH, long long FW, long long sh, long long sw,
                                    long long pt, long long pl) {
  FOR_EACH(i, B * OH * OW * C) {
    const long long c = i % C, t = i / C, ow = t % OW, oh = (t / OW) % OH, b = t / (OW * OH);
    const long long r0 = oh * sh - pt, c0 = ow * sw - pl;
    float m = __int_as_float(0xff800000);  // -inf
    for (long long r = lmax(r0, 0); r < lmin(H, r0 + FH); r++)
      for (long long col = lmax(c0, 0); col < lmin(W, c0 + FW); col++) {
        const float v = x[((b * H + r) * W + col) * C + c];
        if (v > m || v != v) m = v;
      }
    y[i] = m;
  }
}

// Index (row * W + col) of the window's first maximum in image b, channel c, or -1.
__device__ long long windowArgmax(const float* x, long long b, long long c, long long oh, long long ow, long long H,
                                  long long W, long long C, long long FH, long long FW, long long sh, long long sw,
                                  long long pt, long long pl) {
  const long long r0 = oh * sh - pt, c0 = ow * sw - pl;
  float m = __int_as_float(0xff800000);  // -inf
  long long at = -1;
  for (long long r = lmax(r0, 0); r < lmin(H, r0 + FH); r++)
    for (long long col = lmax(c0, 0); col < lmin(W, c0 + FW); col++) {
      const float v = x[((b * H + r) * W + col) * C + c];
      if (v > m) {
        m = v;
        at = r * W + col;
      }
    }
  return at;
}

// One thread per dx element: the windows that contain it, in pool.cc's order.
extern "C" __global__ void max_pool_grad(const float* x, const float* dy, float* dx, long long B, long long H,
                                         long long W, long long C, long long OH, long long OW, long long FH,
                                         long long FW, long long sh, long long sw, long long pt, long long pl) {
  FOR_EACH(i, B * H * W * C) {
    const long long c = i % C, t = i / C, w = t % W, h = (t / W) % H, b = t / (W * H);
    // windows oh with oh*sh - pt <= h <= oh*sh - pt + FH - 1
    const long long ohLo = lmax(0, (h + pt - FH + sh) / sh), ohHi = lmin(OH - 1, (h + pt) / sh);
    const long long owLo = lmax(0, (w + pl - FW + sw) / sw), owHi = lmin(OW - 1, (w + pl) / sw);
    float g = 0.f;
    for (long long oh = ohLo; oh <= ohHi; oh++)
      for (long long ow = owLo; ow <= owHi; ow++)
        if (windowArgmax(x, b, c, oh, ow, H, W, C, FH, FW, sh, sw, pt, pl) == h * W + w)
          g += dy[((b * OH + oh) * OW + ow) * C + c];
    dx[i] = g;
  }
}
