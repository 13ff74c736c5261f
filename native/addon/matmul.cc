// BatchMatMul through oneDNN's sgemm (row-major), transposes handled by the GEMM itself: the
// stock wasm kernel plus bnlab's transpose fix cost ~2.5 ms for a 32x64 by 64x10 product (the
// classifier of a CIFAR ResNet), mostly fixed overhead; this is microseconds.
#include <oneapi/dnnl/dnnl.h>

#include "addon.h"

// matmul(heap, a, b, c, batchA, batchB, M, N, K, transA, transB): c[i] = op(a[i]) * op(b[i]),
// a batch of 1 broadcasting against the other.
napi_value MatMul(napi_env env, napi_callback_info info) {
  Args a(env, info, 11);
  if (!a.ok) return nullptr;
  char* h = a.heap(0);
  const float *A = a.f32(h, 1), *B = a.f32(h, 2);
  float* C = a.f32(h, 3);
  const int64_t batchA = a.i64(4), batchB = a.i64(5), M = a.i64(6), N = a.i64(7), K = a.i64(8);
  const bool tA = a.num(9) != 0, tB = a.num(10) != 0;
  if (!a.ok) return nullptr;
  if (batchA != batchB && batchA != 1 && batchB != 1) {
    a.fail("matmul: batch sizes must match or be 1");
    return nullptr;
  }
  const int64_t batch = batchA > batchB ? batchA : batchB;
  for (int64_t i = 0; i < batch; i++) {
    const float* Ai = A + (batchA == 1 ? 0 : i) * M * K;
    const float* Bi = B + (batchB == 1 ? 0 : i) * K * N;
    const dnnl_status_t st = dnnl_sgemm(tA ? 'T' : 'N', tB ? 'T' : 'N', M, N, K, 1.f, Ai, tA ? M : K, Bi, tB ? K : N,
                                        0.f, C + i * M * N, N);
    if (st != dnnl_success) {
      a.fail("matmul: dnnl_sgemm failed");
      return nullptr;
    }
  }
  return nullptr;
}
