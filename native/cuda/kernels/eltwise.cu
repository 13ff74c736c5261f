// Elementwise kernels: the residual block's relu(a + b) and its gradient (native/addon/eltwise.cc),
// and the generic unary / binary (numpy broadcasting through strides, rank <= 6) / cast / oneHot
// kernels for tfjs' stock ops, following tfjs' CPU backend (NaN propagation of Math.max/min, step
// and relu of NaN, Int32Array's truncation). Op codes are the index of the op's name in
// src/backend/cuda/device.ts' UNARY / BINARY lists (native/cuda/generic.cc maps the names).
// Launched by native/cuda/bn.cc and generic.cc.

#define FOR_EACH(i, n) \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

#define MAX_RANK 6
struct Bcast {  // native/cuda/addon.h
  long long shape[MAX_RANK];
  long long sa[MAX_RANK];
  long long sb[MAX_RANK];
  int rank;
};

__device__ inline float nanf32() { return __int_as_float(0x7fc00000); }

extern "C" __global__ void add_relu(const float* a, const float* b, float* y, long long n) {
  FOR_EACH(i, n) {
    const float v = a[i] + b[i];
    y[i] = v > 0.f ? v : 0.f;
  }
}

extern "C" __global__ void relu_grad(const float* dy, const float* y, float* dx, long long n) {
  FOR_EACH(i, n) dx[i] = y[i] > 0.f ? dy[i] : 0.f;
}

// neg exp log rsqrt sqrt relu abs square reciprocal sigmoid step
extern "C" __global__ void unary_f32(int op, const float* x, float* y, long long n) {
  FOR_EACH(i, n) {
    const float v = x[i];
    float r;
    switch (op) {
      case 0: r = -v; break;
      case 1: r = expf(v); break;
      case 2: r = logf(v); break;
      case 3: r = 1.f / sqrtf(v); break;
      case 4: r = sqrtf(v); break;
      case 5: r = v != v ? v : (v > 0.f ? v : 0.f); break;
      case 6: r = fabsf(v); break;
      case 7: r = v * v; break;
      case 8: r = 1.f / v; break;
      case 9: r = 1.f / (1.f + expf(-v)); break;
      default: r = v != v ? v : (v > 0.f ? 1.f : 0.f); break;
    }
    y[i] = r;
  }
}

// add sub mul div maximum minimum pow squaredDifference; the comparisons are codes 8..13.
__device__ inline float arith(int op, float a, float b) {
  switch (op) {
    case 0: return a + b;
    case 1: return a - b;
    case 2: return a * b;
    case 3: return a / b;
    case 4: return (a != a || b != b) ? nanf32() : (a > b ? a : b);
    case 5: return (a != a || b != b) ? nanf32() : (a < b ? a : b);
    case 6: return powf(a, b);
    default: return (a - b) * (a - b);
  }
}
// int32 arithmetic wraps as an Int32Array stores it; x / 0 stores 0 (ToInt32 of +-Infinity, NaN).
__device__ inline int arith(int op, int a, int b) {
  const unsigned ua = (unsigned)a, ub = (unsigned)b;
  switch (op) {
    case 0: return (int)(ua + ub);
    case 1: return (int)(ua - ub);
    case 2: return (int)(ua * ub);
    case 3: return b == 0 ? 0 : (b == -1 ? (int)(0u - ua) : a / b);
    case 4: return a > b ? a : b;
    case 5: return a < b ? a : b;
    case 6: return (int)(long long)pow((double)a, (double)b);
    default: return (int)((ua - ub) * (ua - ub));
  }
}
template <typename A>
__device__ inline unsigned char compare(int op, A a, A b) {
  switch (op) {
    case 8: return a == b;
    case 9: return a != b;
    case 10: return a > b;
    case 11: return a >= b;
    case 12: return a < b;
    default: return a <= b;
  }
}

// T is the stored type, A the one computed in (bool computes as int, like tfjs' upcast).
template <typename T, typename A>
__device__ void binary(int op, const T* a, const T* b, void* y, Bcast m, long long n) {
  FOR_EACH(i, n) {
    long long ia = 0, ib = 0, rem = i;
    for (int d = m.rank - 1; d >= 0; d--) {
      const long long q = rem / m.shape[d], k = rem - q * m.shape[d];
      rem = q;
      ia += k * m.sa[d];
      ib += k * m.sb[d];
    }
    const A va = (A)a[ia], vb = (A)b[ib];
    if (op >= 8)
      ((unsigned char*)y)[i] = compare(op, va, vb);
    else
      ((T*)y)[i] = (T)arith(op, va, vb);
  }
}
extern "C" __global__ void binary_f32(int op, const float* a, const float* b, void* y, Bcast m, long long n) {
  binary<float, float>(op, a, b, y, m, n);
}
extern "C" __global__ void binary_i32(int op, const int* a, const int* b, void* y, Bcast m, long long n) {
  binary<int, int>(op, a, b, y, m, n);
}
extern "C" __global__ void binary_u8(int op, const unsigned char* a, const unsigned char* b, void* y, Bcast m,
                                     long long n) {
  binary<unsigned char, int>(op, a, b, y, m, n);
}

// JS ToInt32, which Int32Array.from applies: truncate, wrap modulo 2^32; NaN and infinities give 0.
__device__ inline int toInt32(float v) {
  if (v != v || fabsf(v) == __int_as_float(0x7f800000)) return 0;
  double t = fmod(trunc((double)v), 4294967296.0);
  if (t < 0.0) t += 4294967296.0;
  return (int)(unsigned)t;
}

// dtype codes 0 float32, 1 int32, 2 bool (uint8); bool is x != 0 (NaN is true, as in tfjs).
extern "C" __global__ void cast(const void* x, void* y, long long n, int from, int to) {
  FOR_EACH(i, n) {
    float f = 0.f;
    int k = 0;
    if (from == 0) f = ((const float*)x)[i];
    else k = from == 1 ? ((const int*)x)[i] : (int)((const unsigned char*)x)[i];
    if (to == 0) ((float*)y)[i] = from == 0 ? f : (float)k;
    else if (to == 1) ((int*)y)[i] = from == 0 ? toInt32(f) : k;
    else ((unsigned char*)y)[i] = from == 0 ? (f != 0.f) : (k != 0);
  }
}

extern "C" __global__ void one_hot(const int* indices, float* y, long long n, long long depth, float on, float off) {
  FOR_EACH(i, n) {
    const long long r = i / depth;
    y[i] = indices[r] == i - r * depth ? on : off;
  }
}
