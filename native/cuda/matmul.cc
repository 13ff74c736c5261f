// Batched matmul through cuBLAS: c[i] = op(a[i]) * op(b[i]), row-major, a batch of 1 broadcasting
// (native/addon/matmul.cc's contract). cuBLAS is column-major, and a row-major matrix is its own
// transpose read column-major, so C^T = op(B)^T op(A)^T is computed: operands swapped, each
// keeping its transpose flag, leading dimensions those of the row-major storage. A broadcast
// operand has stride 0. TF32 follows init()'s tf32 (cublasSetMathMode).
#include <algorithm>
#include <climits>

#include "addon.h"

namespace ops {

void matmul(CUdeviceptr a, CUdeviceptr b, CUdeviceptr c, long long batchA, long long batchB, long long M, long long N,
            long long K, bool transA, bool transB) {
  if (batchA != batchB && batchA != 1 && batchB != 1) fail("bnlab cuda: matmul: batch sizes must match or be 1");
  const long long batch = std::max(batchA, batchB);
  if (M > INT_MAX || N > INT_MAX || K > INT_MAX || batch > INT_MAX) fail("bnlab cuda: matmul: a dimension exceeds 2^31-1");
  if (!batch || !M || !N) return;
  if (!K) {  // an empty sum; cuBLAS rejects a leading dimension of 0
    fill(c, size_t(batch * M * N), F32, 0);
    return;
  }
  const float one = 1.f, zero = 0.f;
  Device& d = device();
  check(lib.blas.cublasSgemmStridedBatched(
            d.blas, transB ? CUBLAS_OP_T : CUBLAS_OP_N, transA ? CUBLAS_OP_T : CUBLAS_OP_N, int(N), int(M), int(K),
            &one, reinterpret_cast<const float*>(b), int(transB ? K : N), batchB == 1 ? 0 : K * N,
            reinterpret_cast<const float*>(a), int(transA ? M : K), batchA == 1 ? 0 : M * K, &zero,
            reinterpret_cast<float*>(c), int(N), M * N, int(batch)),
        "cublasSgemmStridedBatched");
}

}  // namespace ops
