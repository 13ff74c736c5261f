// Data movement: a strided gather serves slice, transpose (rank <= 6) and the filter layout
// changes for cuDNN (tfjs' HWIO <-> cuDNN's NHWC filter layout KRSC, a transpose), by element
// size; pad_hw copies NHWC activations into a zero border, the asymmetric part of a convolution's
// padding that cuDNN's symmetric padding cannot express. Launched by native/cuda/generic.cc and conv.cc.

#define FOR_EACH(i, n) \
  for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < (n); i += (long long)gridDim.x * blockDim.x)

#define MAX_RANK 6
struct Strided {  // native/cuda/addon.h
  long long shape[MAX_RANK];
  long long stride[MAX_RANK];
  int rank;
};

// y[i] = x[base + sum_d coord_d(i) * stride[d]], coordinates of i in shape (row-major).
template <typename T>
__device__ void gather(const T* x, T* y, Strided m, long long base, long long n) {
  FOR_EACH(i, n) {
    long long src = base, rem = i;
    for (int d = m.rank - 1; d >= 0; d--) {
      const long long q = rem / m.shape[d];
      src += (rem - q * m.shape[d]) * m.stride[d];
      rem = q;
    }
    y[i] = x[src];
  }
}
extern "C" __global__ void gather1(const unsigned char* x, unsigned char* y, Strided m, long long base, long long n) {
  gather(x, y, m, base, n);
}
extern "C" __global__ void gather2(const unsigned short* x, unsigned short* y, Strided m, long long base,
                                   long long n) {
  gather(x, y, m, base, n);
}
extern "C" __global__ void gather4(const unsigned* x, unsigned* y, Strided m, long long base, long long n) {
  gather(x, y, m, base, n);
}
extern "C" __global__ void gather8(const unsigned long long* x, unsigned long long* y, Strided m, long long base,
                                   long long n) {
  gather(x, y, m, base, n);
}

// y [B, H+top+bottom, W+left+right, C] = x with a zero border.
extern "C" __global__ void pad_hw(const float* x, float* y, long long H, long long W, long long C, long long Hp,
                                  long long Wp, long long top, long long left, long long n) {
  FOR_EACH(i, n) {
    const long long c = i % C, t = i / C, wp = t % Wp, hp = (t / Wp) % Hp, b = t / (Wp * Hp);
    const long long h = hp - top, w = wp - left;
    y[i] = (h >= 0 && h < H && w >= 0 && w < W) ? x[((b * H + h) * W + w) * C + c] : 0.f;
  }
}
