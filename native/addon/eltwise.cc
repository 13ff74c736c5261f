// Elementwise kernels: the end of every residual block, relu(a + b), and its gradient
// dy * [y > 0], as single multi-threaded passes (stock wasm runs Add, Relu, Step, Cast and
// Multiply on one thread); same-shape Add; global average pooling and its gradient.
#include <omp.h>

#include "addon.h"

// (heap, a, b, out, n): out[i] = op(a[i], b[i]), multi-threaded above 16k elements.
template <typename Op>
napi_value binary(napi_env env, napi_callback_info info, Op op) {
  Args a(env, info, 5);
  if (!a.ok) return nullptr;
  char* h = a.heap(0);
  const float *x = a.f32(h, 1), *z = a.f32(h, 2);
  float* y = a.f32(h, 3);
  const int64_t n = a.i64(4);
  if (!a.ok) return nullptr;
#pragma omp parallel for schedule(static) if (n > 16384)
  for (int64_t i = 0; i < n; i++) y[i] = op(x[i], z[i]);
  return nullptr;
}

// addRelu(heap, a, b, y, n): y = relu(a + b)
napi_value AddRelu(napi_env env, napi_callback_info info) {
  return binary(env, info, [](float x, float z) { const float v = x + z; return v > 0 ? v : 0.f; });
}

// reluGrad(heap, dy, y, dx, n): dx = y > 0 ? dy : 0
napi_value ReluGrad(napi_env env, napi_callback_info info) {
  return binary(env, info, [](float dy, float y) { return y > 0 ? dy : 0.f; });
}

// add(heap, a, b, y, n): y = a + b, for the same-shape Adds left in a step (gradients of
// tensors used twice, e.g. a residual block's input, are summed by tfjs with Add).
napi_value AddSame(napi_env env, napi_callback_info info) {
  return binary(env, info, [](float x, float z) { return x + z; });
}

// Global average pooling over H*W of NHWC [B, HW, C] and its gradient (dx = dy / HW broadcast
// over HW): tfjs computes the gradient with a ones tensor, a broadcast multiply and a divide.
// gap(heap, x, y, B, HW, C)
napi_value Gap(napi_env env, napi_callback_info info) {
  Args a(env, info, 6);
  if (!a.ok) return nullptr;
  char* h = a.heap(0);
  const float* x = a.f32(h, 1);
  float* y = a.f32(h, 2);
  const int64_t B = a.i64(3), HW = a.i64(4), C = a.i64(5);
  if (!a.ok) return nullptr;
#pragma omp parallel for schedule(static) if (B * HW * C > 65536)
  for (int64_t b = 0; b < B; b++) {
    float* yb = y + b * C;
    for (int64_t c = 0; c < C; c++) yb[c] = 0;
    for (int64_t p = 0; p < HW; p++) {
      const float* row = x + (b * HW + p) * C;
      for (int64_t c = 0; c < C; c++) yb[c] += row[c];
    }
    for (int64_t c = 0; c < C; c++) yb[c] /= float(HW);
  }
  return nullptr;
}

// gapGrad(heap, dy, dx, B, HW, C)
napi_value GapGrad(napi_env env, napi_callback_info info) {
  Args a(env, info, 6);
  if (!a.ok) return nullptr;
  char* h = a.heap(0);
  const float* dy = a.f32(h, 1);
  float* dx = a.f32(h, 2);
  const int64_t B = a.i64(3), HW = a.i64(4), C = a.i64(5);
  if (!a.ok) return nullptr;
#pragma omp parallel for schedule(static) if (B * HW * C > 65536)
  for (int64_t b = 0; b < B; b++)
    for (int64_t p = 0; p < HW; p++)
      for (int64_t c = 0; c < C; c++) dx[(b * HW + p) * C + c] = dy[b * C + c] / float(HW);
  return nullptr;
}
