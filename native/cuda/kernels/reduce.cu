// Reductions over the inner `inner` elements of each of `outer` contiguous rows, for tfjs' stock
// Sum / Max / Min / Mean / ArgMax / ArgMin: one block per row, each thread strides the row in
// order, then a fixed shared-memory tree (the block size depends on `inner` only), so results are
// the same on every run. Accumulation in double as tfjs' CPU backend sums in JS numbers.
// Outputs: sum, max and min in the rows' type (an int32 or bool sum wraps as a typed array stores
// it), mean float32, argMax/argMin int32: the first index of the extreme (NaN ignored unless it is
// the first element, as tfjs' running comparison does); max/min propagate NaN.
// Launched by native/cuda/generic.cc.

#define THREADS 256
// op codes: src/backend/cuda/device.ts' REDUCE order
#define SUM 0
#define MAX 1
#define MIN 2
#define MEAN 3
#define ARGMAX 4

__device__ inline double posInf() { return __longlong_as_double(0x7ff0000000000000LL); }
template <typename T> struct IsFloat { static const bool value = false; };
template <> struct IsFloat<float> { static const bool value = true; };

// Whether (vb, ib) replaces (va, ia): the extreme, ties to the lower index; index -1 is "none yet".
__device__ inline bool better(int op, double va, long long ia, double vb, long long ib) {
  if (ib < 0) return false;
  if (ia < 0) return true;
  const bool more = op == ARGMAX ? vb > va : vb < va;
  return more || (vb == va && ib < ia);
}

template <typename T>
__device__ void reduceRows(int op, const T* x, void* y, long long outer, long long inner) {
  __shared__ double val[THREADS];
  __shared__ long long idx[THREADS];
  const int t = threadIdx.x;
  for (long long row = blockIdx.x; row < outer; row += gridDim.x) {
    const T* xr = x + row * inner;
    double v = op == MAX ? -posInf() : op == MIN ? posInf() : 0.0;
    long long at = -1;
    for (long long j = t; j < inner; j += blockDim.x) {
      const double e = (double)xr[j];
      if (op == SUM || op == MEAN) v += e;
      else if (op == MAX) v = (e != e || e > v) ? e : v;
      else if (op == MIN) v = (e != e || e < v) ? e : v;
      else if (e == e && better(op, v, at, e, j)) v = e, at = j;
    }
    val[t] = v;
    idx[t] = at;
    __syncthreads();
    for (int h = blockDim.x / 2; h > 0; h /= 2) {
      if (t < h) {
        const double a = val[t], b = val[t + h];
        if (op == SUM || op == MEAN) val[t] = a + b;
        else if (op == MAX) val[t] = (a != a || b != b) ? (a != a ? a : b) : (b > a ? b : a);
        else if (op == MIN) val[t] = (a != a || b != b) ? (a != a ? a : b) : (b < a ? b : a);
        else if (better(op, a, idx[t], b, idx[t + h])) val[t] = b, idx[t] = idx[t + h];
      }
      __syncthreads();
    }
    if (t == 0) {
      const double r = val[0];
      if (op == SUM || op == MAX || op == MIN) {
        ((T*)y)[row] = IsFloat<T>::value ? (T)r : (T)(unsigned)(long long)r;
      } else if (op == MEAN) {
        ((float*)y)[row] = (float)(r / (double)inner);
      } else {
        const double first = inner > 0 ? (double)xr[0] : 0.0;
        ((int*)y)[row] = (first != first || idx[0] < 0) ? 0 : (int)idx[0];
      }
    }
    __syncthreads();
  }
}

extern "C" __global__ void reduce_f32(int op, const float* x, void* y, long long outer, long long inner) {
  reduceRows(op, x, y, outer, inner);
}
extern "C" __global__ void reduce_i32(int op, const int* x, void* y, long long outer, long long inner) {
  reduceRows(op, x, y, outer, inner);
}
extern "C" __global__ void reduce_u8(int op, const unsigned char* x, void* y, long long outer, long long inner) {
  reduceRows(op, x, y, outer, inner);
}
