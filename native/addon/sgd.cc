// SGD with momentum for one parameter in one pass (src/train/sgd.ts has the rule and the
// tf-op version): one kernel call per parameter instead of five or six, each of which costs
// the tfjs engine more than the arithmetic on a small tensor.
//   d = g + wd*w;  v' = m*v + d;  w' = w - lr*(nesterov ? d + m*v' : v')
#include "addon.h"

// sgd(heap, w, g, v, wOut, vOut, n, lr, momentum, wd, nesterov)
napi_value Sgd(napi_env env, napi_callback_info info) {
  Args a(env, info, 11);
  if (!a.ok) return nullptr;
  char* h = a.heap(0);
  const float *w = a.f32(h, 1), *g = a.f32(h, 2), *v = a.f32(h, 3);
  float *wo = a.f32(h, 4), *vo = a.f32(h, 5);
  const int64_t n = a.i64(6);
  const float lr = float(a.num(7)), m = float(a.num(8)), wd = float(a.num(9));
  const bool nesterov = a.num(10) != 0;
  if (!a.ok) return nullptr;
  for (int64_t i = 0; i < n; i++) {
    const float d = g[i] + wd * w[i];
    const float vn = m * v[i] + d;
    vo[i] = vn;
    wo[i] = w[i] - lr * (nesterov ? d + m * vn : vn);
  }
  return nullptr;
}
