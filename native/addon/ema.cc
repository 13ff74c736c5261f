// One EMA update of a BN layer's population statistics from the statistics its forward pass
// observed, in one kernel call (src/train/step.ts' updateEma has the rule and the tf-op
// version, which took ~11 kernel calls per layer). PyTorch convention: the buffer holds the
// unbiased variance. Over the groups used: m = mean_g(mean_g), u = mean_g(var_g * n_g/(n_g-1)),
// then mean' = decay*mean + (1-decay)*m, var' = decay*var + (1-decay)*u. Float64 inside.
#include <vector>

#include "addon.h"

// ema(heap, mean, var, obsMean, obsVar, meanOut, varOut, C, groups, decay, counts Float64Array)
napi_value Ema(napi_env env, napi_callback_info info) {
  Args a(env, info, 11);
  if (!a.ok) return nullptr;
  char* h = a.heap(0);
  const float *mean = a.f32(h, 1), *var = a.f32(h, 2), *om = a.f32(h, 3), *ov = a.f32(h, 4);
  float *mo = a.f32(h, 5), *vo = a.f32(h, 6);
  const int64_t C = a.i64(7), G = a.i64(8);
  const double decay = a.num(9);
  void* data = nullptr;
  size_t len = 0;
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, a.v[10], &type, &len, &data, nullptr, nullptr) != napi_ok ||
      type != napi_float64_array || int64_t(len) != G)
    a.fail("ema: counts must be a Float64Array with one count per group");
  if (!a.ok) return nullptr;
  const double* counts = static_cast<const double*>(data);
  std::vector<double> m(C, 0.0), u(C, 0.0);
  for (int64_t g = 0; g < G; g++) {
    const double n = counts[g], unbias = n > 1 ? n / (n - 1) : 1.0;
    for (int64_t c = 0; c < C; c++) m[c] += om[g * C + c], u[c] += ov[g * C + c] * unbias;
  }
  for (int64_t c = 0; c < C; c++) {
    mo[c] = float(decay * mean[c] + (1 - decay) * (m[c] / G));
    vo[c] = float(decay * var[c] + (1 - decay) * (u[c] / G));
  }
  return nullptr;
}
