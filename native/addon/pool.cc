// Max pooling's gradient (ResNet-50's stem), NHWC: tfjs' wasm MaxPoolGrad is single-threaded
// and took 79 ms of a 797 ms ResNet-50 64x64 b32 step (10%, measured with bench --profile).
// Gradient routing follows tfjs (and PyTorch): each window sends dy to its first maximum in
// row-major window order (strict >), so ties (ReLU zeros) go where the reference sends them;
// a window with no value above -inf (all -inf or NaN) sends nothing.
#include <omp.h>

#include <cstring>
#include <limits>
#include <vector>

#include "addon.h"

// maxPoolGrad(heap, x, dy, dx, B, H, W, C, OH, OW, FH, FW, sh, sw, pt, pl)
napi_value MaxPoolGrad(napi_env env, napi_callback_info info) {
  Args a(env, info, 16);
  if (!a.ok) return nullptr;
  char* h = a.heap(0);
  const float* x = a.f32(h, 1);
  const float* dy = a.f32(h, 2);
  float* dx = a.f32(h, 3);
  const int64_t B = a.i64(4), H = a.i64(5), W = a.i64(6), C = a.i64(7), OH = a.i64(8), OW = a.i64(9);
  const int64_t FH = a.i64(10), FW = a.i64(11), sh = a.i64(12), sw = a.i64(13), pt = a.i64(14), pl = a.i64(15);
  if (!a.ok) return nullptr;
  // one image per thread: its dx is written by no other thread
#pragma omp parallel if (B * H * W * C > 65536)
  {
    std::vector<float> best(C);
    std::vector<int64_t> at(C);
#pragma omp for schedule(static)
    for (int64_t b = 0; b < B; b++) {
      const float* xb = x + b * H * W * C;
      float* dxb = dx + b * H * W * C;
      std::memset(dxb, 0, sizeof(float) * H * W * C);
      for (int64_t oh = 0; oh < OH; oh++) {
        const int64_t r0 = oh * sh - pt, r1 = std::min(H, r0 + FH);
        for (int64_t ow = 0; ow < OW; ow++) {
          const int64_t c0 = ow * sw - pl, c1 = std::min(W, c0 + FW);
          for (int64_t c = 0; c < C; c++) best[c] = -std::numeric_limits<float>::infinity(), at[c] = -1;
          for (int64_t r = std::max<int64_t>(r0, 0); r < r1; r++)
            for (int64_t col = std::max<int64_t>(c0, 0); col < c1; col++) {
              const int64_t p = (r * W + col) * C;
              for (int64_t c = 0; c < C; c++)
                if (xb[p + c] > best[c]) best[c] = xb[p + c], at[c] = p + c;
            }
          const float* g = dy + ((b * OH + oh) * OW + ow) * C;
          for (int64_t c = 0; c < C; c++)
            if (at[c] >= 0) dxb[at[c]] += g[c];
        }
      }
    }
  }
  return nullptr;
}
