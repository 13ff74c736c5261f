// Shared internals of bnlab's CUDA device layer (native/cuda/*.cc): the loaded libraries, the one
// device (context, stream, library handles, kernels, live buffers), error checks that throw
// std::runtime_error (addon.cc turns them into JS Errors at the N-API boundary), and kernel launch.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <vector>

#include "api.h"

struct Libs {
  DriverApi cu;
  NvrtcApi rtc;
  CublasApi blas;
  CudnnApi dnn;
  std::string driverPath, nvrtcPath, cublasPath, cudnnPath;
};
extern Libs lib;

// loader.cc: dlopen()s the four libraries and resolves every symbol, or throws naming what is
// wrong and the fix.
struct LibPaths {
  std::string driver, nvrtc, cublas, cudnn;
};
void loadLibraries(const LibPaths& paths);

[[noreturn]] void fail(const std::string& message);
void check(CUresult r, const char* call, const char* fix = nullptr);
void check(nvrtcResult r, const char* call);
void check(cublasStatus_t r, const char* call);
void check(cudnnStatus_t r, const char* call);

// The kernels of native/cuda/kernels/*.cu that the addon launches, resolved by name at init().
#define BNLAB_KERNELS(X)                                                                                     \
  X(bn_fwd_partial) X(bn_fwd_finalize) X(bn_apply) X(bn_apply_add_relu) X(bn_bwd_partial) X(bn_bwd_finalize) \
  X(bn_bwd_dx) X(sgd) X(ema) X(add_relu) X(relu_grad) X(gap) X(gap_grad) X(max_pool) X(max_pool_grad)        \
  X(unary_f32) X(binary_f32) X(binary_i32) X(binary_u8) X(reduce_f32) X(reduce_i32) X(reduce_u8) X(cast)     \
  X(one_hot) X(gather1) X(gather2) X(gather4) X(gather8) X(pad_hw)
enum Kernel {
#define BNLAB_KERNEL_ENUM(name) K_##name,
  BNLAB_KERNELS(BNLAB_KERNEL_ENUM)
#undef BNLAB_KERNEL_ENUM
  K_COUNT
};
extern const char* const kernelNames[K_COUNT];

// Up to 6-d index maps passed to kernels by value; the same layout is declared in the .cu files.
constexpr int MAX_RANK = 6;
struct Strided {  // gather: y[i] = x[base + sum_d coord_d(i) * stride[d]]
  long long shape[MAX_RANK];
  long long stride[MAX_RANK];
  int rank;
};
struct Bcast {  // binary: a at sum coord*sa, b at sum coord*sb
  long long shape[MAX_RANK];
  long long sa[MAX_RANK];
  long long sb[MAX_RANK];
  int rank;
};
static_assert(sizeof(Strided) == 104 && sizeof(Bcast) == 152, "kernel structs must match the .cu layout");

// Host memory pinned for copies: uploads go through a ring whose regions are reused only after
// the copy that read them ran (an event per region); downloads through one buffer, then a sync.
struct Staging {
  char* base = nullptr;
  size_t cap = 0, head = 0;
  struct Region {
    size_t begin, end;
    CUevent done;
  };
  std::vector<Region> pending;  // oldest first
  std::vector<CUevent> spare;
};

struct ConvPlan;  // conv.cc

struct Device {
  CUdevice dev = 0;
  CUcontext ctx = nullptr;
  CUstream stream = nullptr;
  CUmemoryPool pool = nullptr;
  cublasHandle_t blas = nullptr;
  cudnnHandle_t dnn = nullptr;
  int ccMajor = 0, ccMinor = 0;
  std::string name;
  size_t totalBytes = 0;
  std::vector<std::pair<std::string, std::string>> libs;  // info().libs: what runs each part
  bool tf32 = false, deterministic = false;
  std::vector<CUmodule> modules;
  CUfunction fn[K_COUNT] = {};
  std::unordered_map<CUdeviceptr, size_t> live;  // buffer -> bytes asked for
  size_t inUse = 0;
  Staging up;
  char* down = nullptr;
  size_t downCap = 0;
  CUdeviceptr workspace = 0;  // cuDNN's, grown to the largest plan's need
  size_t workspaceBytes = 0;
  std::map<std::vector<int>, std::shared_ptr<ConvPlan>> plans;  // key: kind, dims, tf32, deterministic
  ~Device();  // releases what a failed init() created; a working device lives as long as the process
};
Device& device();  // the initialised device, or throws "init() first"

struct InitOptions {
  LibPaths libs;
  std::string kernelDir, cacheDir;
  bool tf32 = false, deterministic = false;
};
void initDevice(const InitOptions& o);  // init.cc

// A device buffer for the duration of one call, freed in stream order (the pool reuses it at once).
struct Scratch {
  CUdeviceptr ptr = 0;
  explicit Scratch(size_t bytes);
  ~Scratch();
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
};
void uploadTo(CUdeviceptr dst, const void* src, size_t bytes);  // memory.cc, through the staging ring

struct Dim {
  unsigned x, y, z;
};
inline unsigned blocksFor(long long n, unsigned threads = 256) {
  const long long b = (n + threads - 1) / threads;
  return unsigned(b < (1 << 20) ? b : (1 << 20));  // kernels loop over the rest (grid-stride)
}

// Kernel parameters are read by address with the sizes the .cu signature declares: only these
// types are accepted, so an int64_t or bool cannot slip in where the kernel reads an int.
template <typename T>
constexpr bool kernelArg = std::is_same_v<T, CUdeviceptr> || std::is_same_v<T, long long> ||
                           std::is_same_v<T, int> || std::is_same_v<T, float> || std::is_same_v<T, double> ||
                           std::is_same_v<T, Strided> || std::is_same_v<T, Bcast>;
template <typename... A>
void launch(Kernel k, Dim grid, Dim block, A... args) {
  static_assert((kernelArg<A> && ...), "kernel arguments: CUdeviceptr, long long, int, float, double, Strided, Bcast");
  void* params[] = {static_cast<void*>(&args)...};
  check(lib.cu.cuLaunchKernel(device().fn[k], grid.x, grid.y, grid.z, block.x, block.y, block.z, 0, device().stream,
                              params, nullptr),
        kernelNames[k]);
}
// One thread per element over n elements (grid-stride); nothing to launch for n == 0.
template <typename... A>
void launchN(Kernel k, long long n, A... args) {
  if (n > 0) launch(k, Dim{blocksFor(n), 1, 1}, Dim{256, 1, 1}, args...);
}

enum DType { F32 = 0, I32 = 1, BOOL = 2 };
size_t dtypeBytes(DType t);
struct Memory {
  size_t inUse, pooled, free, total;
};
struct PoolDims {
  long long B, H, W, C, OH, OW, FH, FW, sh, sw, pt, pl;
};
using Shape = std::vector<long long>;

// The Device operations (memory.cc, bn.cc, generic.cc, matmul.cc, conv.cc), in a namespace of their
// own: names such as sync() are libc's too.
namespace ops {
CUdeviceptr alloc(size_t bytes);
void release(CUdeviceptr buf);
void upload(CUdeviceptr buf, const void* src, size_t bytes);
void download(CUdeviceptr buf, void* dst, size_t bytes);
void copy(CUdeviceptr dst, CUdeviceptr src, size_t bytes);
void fill(CUdeviceptr buf, size_t n, DType t, double value);
void sync();
Memory memory();

void bnForward(CUdeviceptr x, CUdeviceptr y, CUdeviceptr mean, CUdeviceptr var, CUdeviceptr gamma, CUdeviceptr beta,
               long long G, long long M, long long C, float eps, bool relu);
void bnBackward(CUdeviceptr dy, CUdeviceptr x, CUdeviceptr mean, CUdeviceptr var, CUdeviceptr gamma,
                CUdeviceptr beta, CUdeviceptr dx, CUdeviceptr dgamma, CUdeviceptr dbeta, long long G, long long M,
                long long C, float eps, bool relu);
void bnApply(CUdeviceptr x, CUdeviceptr y, CUdeviceptr scale, CUdeviceptr shift, long long rows, long long C, bool relu);
void bnApplyAddRelu(CUdeviceptr x, CUdeviceptr z, CUdeviceptr y, CUdeviceptr scale, CUdeviceptr shift, long long rows,
                    long long C);
void sgd(CUdeviceptr w, CUdeviceptr g, CUdeviceptr v, CUdeviceptr wOut, CUdeviceptr vOut, long long n, float lr,
         float momentum, float wd, bool nesterov);
void ema(CUdeviceptr mean, CUdeviceptr var, CUdeviceptr obsMean, CUdeviceptr obsVar, CUdeviceptr meanOut,
         CUdeviceptr varOut, long long C, long long G, double decay, const double* counts);
void addRelu(CUdeviceptr a, CUdeviceptr b, CUdeviceptr y, long long n);
void reluGrad(CUdeviceptr dy, CUdeviceptr y, CUdeviceptr dx, long long n);
void gap(CUdeviceptr x, CUdeviceptr y, long long B, long long HW, long long C);
void gapGrad(CUdeviceptr dy, CUdeviceptr dx, long long B, long long HW, long long C);
void maxPool(CUdeviceptr x, CUdeviceptr y, const PoolDims& d);
void maxPoolGrad(CUdeviceptr x, CUdeviceptr dy, CUdeviceptr dx, const PoolDims& d);

void matmul(CUdeviceptr a, CUdeviceptr b, CUdeviceptr c, long long batchA, long long batchB, long long M, long long N,
            long long K, bool transA, bool transB);
void conv(int kind, CUdeviceptr a, CUdeviceptr b, CUdeviceptr c, const std::vector<int>& dims);

void unary(const std::string& op, CUdeviceptr x, CUdeviceptr y, long long n);
void binary(const std::string& op, CUdeviceptr a, CUdeviceptr b, CUdeviceptr y, const Shape& aShape,
            const Shape& bShape, const Shape& outShape, DType t);
void reduce(const std::string& op, CUdeviceptr x, CUdeviceptr y, long long outer, long long inner, DType t);
void cast(CUdeviceptr x, CUdeviceptr y, long long n, DType from, DType to);
void slice(CUdeviceptr x, CUdeviceptr y, const Shape& shape, const Shape& begin, const Shape& size, long long bytes);
void transpose(CUdeviceptr x, CUdeviceptr y, const Shape& shape, const Shape& perm, long long bytes);
void oneHot(CUdeviceptr indices, CUdeviceptr y, long long n, long long depth, float on, float off);
}  // namespace ops
