// Parameter and statistics updates, one pass each (native/addon/sgd.cc and ema.cc):
//   SGD with momentum: d = g + wd*w; v' = m*v + d; w' = w - lr*(nesterov ? d + m*v' : v')
//   EMA of a BN layer's population statistics over its G ghost groups, float64 inside:
//   mean' = decay*mean + (1-decay)*avg_g(mean_g), var' = decay*var + (1-decay)*avg_g(var_g * unbias_g)
// with unbias_g = n_g/(n_g-1) computed on the host from the group counts. Launched by native/cuda/bn.cc.

#define FOR_EACH(i, n) \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

extern "C" __global__ void sgd(const float* w, const float* g, const float* v, float* wOut, float* vOut, long long n,
                               float lr, float momentum, float wd, int nesterov) {
  FOR_EACH(i, n) {
    const float d = g[i] + wd * w[i];
    const float vn = momentum * v[i] + d;
    vOut[i] = vn;
    wOut[i] = w[i] - lr * (nesterov ? d + momentum * vn : vn);
  }
}

// One thread per channel; groups summed in order.
extern "C" __global__ void ema(const float* mean, const float* var, const float* obsMean, const float* obsVar,
                               float* meanOut, float* varOut, const double* unbias, long long C, long long G,
                               double decay) {
  FOR_EACH(c, C) {
    double m = 0.0, u = 0.0;
    for (long long g = 0; g < G; g++) {
      m += (double)obsMean[g * C + c];
      u += (double)obsVar[g * C + c] * unbias[g];
    }
    meanOut[c] = (float)(decay * (double)mean[c] + (1.0 - decay) * (m / (double)G));
    varOut[c] = (float)(decay * (double)var[c] + (1.0 - decay) * (u / (double)G));
  }
}
