// bnlab's own kernels on the device: ghost BatchNorm, the fused updates, the residual add+ReLU,
// pooling (native/cuda/kernels/bn.cu, update.cu, eltwise.cu, pool.cu). Grids are sized here.
#include "addon.h"

namespace {

constexpr Dim BN_BLOCK = {32, 8, 1};  // 32 channels x 8 row lanes, as bn.cu's LANES

// Rows per partial-sum block: a multiple of the 8 x 16 rows a block sweeps at once, with at most
// 65535 chunks (the grid's y limit). It depends on M alone, so the summation order does too.
long long chunkRows(long long M) {
  long long c = 512;
  while ((M + c - 1) / c > 65535) c *= 2;
  return c;
}

void checkGroups(const char* op, long long G, long long M, long long C) {
  if (G < 1 || M < 1 || C < 0) fail(std::string("bnlab cuda: ") + op + ": G and M must be >= 1, C >= 0");
  if (G > 65535) fail(std::string("bnlab cuda: ") + op + ": at most 65535 groups");
}

void checkPool(const char* op, const PoolDims& d) {
  if (d.FH < 1 || d.FW < 1 || d.sh < 1 || d.sw < 1 || d.pt < 0 || d.pl < 0)
    fail(std::string("bnlab cuda: ") + op + ": filter and strides must be >= 1, padding >= 0");
}

int flag(bool b) { return b ? 1 : 0; }

}  // namespace

namespace ops {

void bnForward(CUdeviceptr x, CUdeviceptr y, CUdeviceptr mean, CUdeviceptr var, CUdeviceptr gamma, CUdeviceptr beta,
               long long G, long long M, long long C, float eps, bool relu) {
  checkGroups("bnForward", G, M, C);
  if (!C) return;
  const long long chunk = chunkRows(M), P = (M + chunk - 1) / chunk;
  Scratch part(size_t(G * P * 2 * C) * sizeof(double)), coef(size_t(2 * G * C) * sizeof(float));
  launch(K_bn_fwd_partial, Dim{unsigned((C + 31) / 32), unsigned(P), unsigned(G)}, BN_BLOCK, x, part.ptr, M, C, chunk);
  launchN(K_bn_fwd_finalize, G * C, part.ptr, x, mean, var, gamma, beta, coef.ptr, G, M, C, P, eps);
  const CUdeviceptr shift = coef.ptr + CUdeviceptr(G * C) * sizeof(float);
  launchN(K_bn_apply, G * M * C, x, y, coef.ptr, shift, M, C, G * M * C, flag(relu));
}

void bnBackward(CUdeviceptr dy, CUdeviceptr x, CUdeviceptr mean, CUdeviceptr var, CUdeviceptr gamma,
                CUdeviceptr beta, CUdeviceptr dx, CUdeviceptr dgamma, CUdeviceptr dbeta, long long G, long long M,
                long long C, float eps, bool relu) {
  checkGroups("bnBackward", G, M, C);
  if (!C) return;
  const long long chunk = chunkRows(M), P = (M + chunk - 1) / chunk;
  Scratch part(size_t(G * P * 2 * C) * sizeof(double)), coef(size_t(5 * G * C) * sizeof(float));
  launch(K_bn_bwd_partial, Dim{unsigned((C + 31) / 32), unsigned(P), unsigned(G)}, BN_BLOCK, x, dy, mean, var, gamma,
         beta, part.ptr, M, C, chunk, eps, flag(relu));
  launchN(K_bn_bwd_finalize, C, part.ptr, mean, var, gamma, coef.ptr, dgamma, dbeta, G, M, C, P, eps);
  launchN(K_bn_bwd_dx, G * M * C, x, dy, gamma, beta, coef.ptr, dx, G * C, M, C, G * M * C, flag(relu));
}

void bnApply(CUdeviceptr x, CUdeviceptr y, CUdeviceptr scale, CUdeviceptr shift, long long rows, long long C,
             bool relu) {
  launchN(K_bn_apply, rows * C, x, y, scale, shift, rows, C, rows * C, flag(relu));
}

void bnApplyAddRelu(CUdeviceptr x, CUdeviceptr z, CUdeviceptr y, CUdeviceptr scale, CUdeviceptr shift, long long rows,
                    long long C) {
  launchN(K_bn_apply_add_relu, rows * C, x, z, y, scale, shift, C, rows * C);
}

void sgd(CUdeviceptr w, CUdeviceptr g, CUdeviceptr v, CUdeviceptr wOut, CUdeviceptr vOut, long long n, float lr,
         float momentum, float wd, bool nesterov) {
  launchN(K_sgd, n, w, g, v, wOut, vOut, n, lr, momentum, wd, flag(nesterov));
}

// The unbias factors n/(n-1) are computed here in float64 (ema.cc's expression) and staged to the
// device with the stream, so the caller's counts array is free when this returns.
void ema(CUdeviceptr mean, CUdeviceptr var, CUdeviceptr obsMean, CUdeviceptr obsVar, CUdeviceptr meanOut,
         CUdeviceptr varOut, long long C, long long G, double decay, const double* counts) {
  if (G < 1) fail("bnlab cuda: ema: at least one group");
  std::vector<double> unbias(size_t(G), 1.0);
  for (long long g = 0; g < G; g++)
    if (counts[g] > 1) unbias[size_t(g)] = counts[g] / (counts[g] - 1);
  Scratch u(unbias.size() * sizeof(double));
  uploadTo(u.ptr, unbias.data(), unbias.size() * sizeof(double));
  launchN(K_ema, C, mean, var, obsMean, obsVar, meanOut, varOut, u.ptr, C, G, decay);
}

void addRelu(CUdeviceptr a, CUdeviceptr b, CUdeviceptr y, long long n) { launchN(K_add_relu, n, a, b, y, n); }

void reluGrad(CUdeviceptr dy, CUdeviceptr y, CUdeviceptr dx, long long n) { launchN(K_relu_grad, n, dy, y, dx, n); }

void gap(CUdeviceptr x, CUdeviceptr y, long long B, long long HW, long long C) {
  if (HW < 1) fail("bnlab cuda: gap: HW must be >= 1");
  launchN(K_gap, B * C, x, y, B, HW, C);
}

void gapGrad(CUdeviceptr dy, CUdeviceptr dx, long long B, long long HW, long long C) {
  launchN(K_gap_grad, B * HW * C, dy, dx, HW, C, B * HW * C);
}

void maxPool(CUdeviceptr x, CUdeviceptr y, const PoolDims& d) {
  checkPool("maxPool", d);
  launchN(K_max_pool, d.B * d.OH * d.OW * d.C, x, y, d.B, d.H, d.W, d.C, d.OH, d.OW, d.FH, d.FW, d.sh, d.sw, d.pt,
          d.pl);
}

void maxPoolGrad(CUdeviceptr x, CUdeviceptr dy, CUdeviceptr dx, const PoolDims& d) {
  checkPool("maxPoolGrad", d);
  launchN(K_max_pool_grad, d.B * d.H * d.W * d.C, x, dy, dx, d.B, d.H, d.W, d.C, d.OH, d.OW, d.FH, d.FW, d.sh, d.sw,
          d.pt, d.pl);
}

}  // namespace ops
