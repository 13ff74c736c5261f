// Convolutions through cuDNN's legacy API, activations NHWC as tfjs keeps them. tfjs' filters are
// HWIO and cuDNN's NHWC filters KRSC (= OHWI), so the filter is transposed into scratch on the way
// in (and the filter gradient back to HWIO on the way out). cuDNN pads symmetrically only: the
// common part of tfjs' padding goes to cuDNN, the rest (e.g. SAME with stride 2: 0 top, 1 bottom)
// is a zero border added to x (pad_hw), and the data gradient is cropped back by a slice.
// Per (kind, dims, tf32, deterministic) the descriptors and the algorithm are made once: the
// algorithm by running every candidate on the real buffers (cudnnFind*Ex).
#include <algorithm>
#include <functional>
#include <optional>

#include "addon.h"

struct ConvPlan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;  // x (padded) and y / dy
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  int algo = -1;  // -1 until the first call chooses one
  size_t workspace = 0;
  ~ConvPlan() {  // a plan whose creation failed; that failure is the error reported
    if (x) lib.dnn.cudnnDestroyTensorDescriptor(x);
    if (y) lib.dnn.cudnnDestroyTensorDescriptor(y);
    if (w) lib.dnn.cudnnDestroyFilterDescriptor(w);
    if (conv) lib.dnn.cudnnDestroyConvolutionDescriptor(conv);
  }
};

namespace {

struct Geometry {
  int B, H, W, ci, FH, FW, co, OH, OW, sh, sw, pt, pl, pb, pr;
  int ph = 0, pw = 0;                          // the symmetric padding cuDNN applies
  int top = 0, bottom = 0, left = 0, right = 0;  // the rest, a zero border around x
  int Hp = 0, Wp = 0;                          // x's size with that border
  bool bordered() const { return top || bottom || left || right; }
};

std::string describe(int kind, const std::vector<int>& d) {
  std::string s = kind == 0 ? "forward" : kind == 1 ? "backward data" : "backward filter";
  s += " (B H W ci FH FW co OH OW sh sw pt pl pb pr =";
  for (int v : d) s += " " + std::to_string(v);
  return s + ")";
}

Geometry geometry(int kind, const std::vector<int>& d) {
  if (kind < 0 || kind > 2) fail("bnlab cuda: conv: kind must be 0 (forward), 1 (backward data) or 2 (backward filter)");
  if (d.size() != 15) fail("bnlab cuda: conv: dims must hold 15 numbers: B H W ci FH FW co OH OW sh sw pt pl pb pr");
  Geometry g{d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7], d[8], d[9], d[10], d[11], d[12], d[13], d[14]};
  if (*std::min_element(d.begin(), d.begin() + 11) < 1 || *std::min_element(d.begin() + 11, d.end()) < 0)
    fail("bnlab cuda: conv: sizes and strides must be >= 1, padding >= 0: " + describe(kind, d));
  g.ph = std::min(g.pt, g.pb);
  g.pw = std::min(g.pl, g.pr);
  g.top = g.pt - g.ph;
  g.bottom = g.pb - g.ph;
  g.left = g.pl - g.pw;
  g.right = g.pr - g.pw;
  g.Hp = g.H + g.top + g.bottom;
  g.Wp = g.W + g.left + g.right;
  const int spanH = g.Hp + 2 * g.ph - g.FH, spanW = g.Wp + 2 * g.pw - g.FW;
  if (spanH < 0 || spanW < 0 || spanH / g.sh + 1 != g.OH || spanW / g.sw + 1 != g.OW)
    fail("bnlab cuda: conv: OH/OW do not follow from the input, filter, strides and padding: " + describe(kind, d));
  return g;
}

void* ptr(CUdeviceptr p) { return reinterpret_cast<void*>(static_cast<uintptr_t>(p)); }

ConvPlan& plan(Device& d, int kind, const Geometry& g, const std::vector<int>& dims) {
  std::vector<int> key = {kind};
  key.insert(key.end(), dims.begin(), dims.end());
  key.push_back(d.tf32);
  key.push_back(d.deterministic);
  std::shared_ptr<ConvPlan>& slot = d.plans[key];
  if (slot) return *slot;
  auto p = std::make_shared<ConvPlan>();
  check(lib.dnn.cudnnCreateTensorDescriptor(&p->x), "cudnnCreateTensorDescriptor");
  check(lib.dnn.cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, g.B, g.ci, g.Hp, g.Wp),
        "cudnnSetTensor4dDescriptor");
  check(lib.dnn.cudnnCreateTensorDescriptor(&p->y), "cudnnCreateTensorDescriptor");
  check(lib.dnn.cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, g.B, g.co, g.OH, g.OW),
        "cudnnSetTensor4dDescriptor");
  check(lib.dnn.cudnnCreateFilterDescriptor(&p->w), "cudnnCreateFilterDescriptor");
  check(lib.dnn.cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, g.co, g.ci, g.FH, g.FW),
        "cudnnSetFilter4dDescriptor");
  check(lib.dnn.cudnnCreateConvolutionDescriptor(&p->conv), "cudnnCreateConvolutionDescriptor");
  check(lib.dnn.cudnnSetConvolution2dDescriptor(p->conv, g.ph, g.pw, g.sh, g.sw, 1, 1, CUDNN_CROSS_CORRELATION,
                                                CUDNN_DATA_FLOAT),
        "cudnnSetConvolution2dDescriptor");
  // FMA math keeps float32 convolutions off TF32 tensor cores, which cuDNN's default math allows.
  check(lib.dnn.cudnnSetConvolutionMathType(p->conv, d.tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH),
        "cudnnSetConvolutionMathType");
  slot = p;
  return *p;
}

// One kind's cuDNN calls for choosing an algorithm, with their names for errors.
struct Search {
  const char *countName, *sizeName, *findName;
  std::function<cudnnStatus_t(int*)> count;
  std::function<cudnnStatus_t(int, size_t*)> size;
  std::function<cudnnStatus_t(int, int*, cudnnConvAlgoPerf*, void*, size_t)> find;
};

void choose(Device& d, ConvPlan& p, const Search& s, const std::string& what) {
  int count = 0;
  check(s.count(&count), s.countName);
  // Room for the hungriest algorithm, up to half the free memory: cudnnFind*Ex tries only those
  // whose workspace fits. An algorithm that cannot do this geometry answers its size with an
  // error status, which just leaves it out.
  size_t most = 0;
  for (int a = 0; a < count; a++) {
    size_t bytes = 0;
    if (s.size(a, &bytes) == CUDNN_STATUS_SUCCESS) most = std::max(most, bytes);
  }
  size_t free = 0, total = 0;
  check(lib.cu.cuMemGetInfo_v2(&free, &total), "cuMemGetInfo");
  most = std::min(most, free / 2);
  std::vector<cudnnConvAlgoPerf> perf(size_t(std::max(count, 1)));
  int returned = 0;
  {
    std::optional<Scratch> ws;
    if (most) ws.emplace(most);
    check(s.find(count, &returned, perf.data(), ws ? ptr(ws->ptr) : nullptr, most), s.findName);
  }
  // perf comes fastest first. Deterministic mode takes the lowest-numbered qualifying algorithm
  // instead: timing noise must not pick another algorithm, with other rounding, on the next run.
  int pick = -1;
  for (int i = 0; i < returned; i++) {
    const cudnnConvAlgoPerf& r = perf[size_t(i)];
    if (r.status != CUDNN_STATUS_SUCCESS) continue;
    if (d.deterministic && r.determinism != CUDNN_DETERMINISTIC) continue;
    if (!d.tf32 && (r.mathType == CUDNN_TENSOR_OP_MATH || r.mathType == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION)) continue;
    // (algo, mathType) in lexical order: with TF32 on one algorithm may come twice, once per math type
    const cudnnConvAlgoPerf* q = pick < 0 ? nullptr : &perf[size_t(pick)];
    if (!q || (d.deterministic && (r.algo < q->algo || (r.algo == q->algo && r.mathType < q->mathType)))) pick = i;
  }
  if (pick < 0)
    fail(std::string("bnlab cuda: cuDNN has no ") + (d.deterministic ? "deterministic " : "") +
         (d.tf32 ? "" : "non-TF32 ") + "algorithm for the convolution " + what +
         (d.deterministic ? ". Fix: run without deterministic mode" : ""));
  if (d.tf32) check(lib.dnn.cudnnSetConvolutionMathType(p.conv, perf[size_t(pick)].mathType), "cudnnSetConvolutionMathType");
  p.algo = perf[size_t(pick)].algo;
  check(s.size(p.algo, &p.workspace), s.sizeName);
}

Search forwardSearch(Device& d, ConvPlan& p, CUdeviceptr x, CUdeviceptr w, CUdeviceptr y) {
  return {"cudnnGetConvolutionForwardAlgorithmMaxCount", "cudnnGetConvolutionForwardWorkspaceSize",
          "cudnnFindConvolutionForwardAlgorithmEx",
          [&d](int* n) { return lib.dnn.cudnnGetConvolutionForwardAlgorithmMaxCount(d.dnn, n); },
          [&d, &p](int algo, size_t* bytes) {
            return lib.dnn.cudnnGetConvolutionForwardWorkspaceSize(d.dnn, p.x, p.w, p.conv, p.y, algo, bytes);
          },
          [&d, &p, x, w, y](int n, int* got, cudnnConvAlgoPerf* perf, void* ws, size_t bytes) {
            return lib.dnn.cudnnFindConvolutionForwardAlgorithmEx(d.dnn, p.x, ptr(x), p.w, ptr(w), p.conv, p.y, ptr(y),
                                                                  n, got, perf, ws, bytes);
          }};
}

Search backwardDataSearch(Device& d, ConvPlan& p, CUdeviceptr w, CUdeviceptr dy, CUdeviceptr dx) {
  return {"cudnnGetConvolutionBackwardDataAlgorithmMaxCount", "cudnnGetConvolutionBackwardDataWorkspaceSize",
          "cudnnFindConvolutionBackwardDataAlgorithmEx",
          [&d](int* n) { return lib.dnn.cudnnGetConvolutionBackwardDataAlgorithmMaxCount(d.dnn, n); },
          [&d, &p](int algo, size_t* bytes) {
            return lib.dnn.cudnnGetConvolutionBackwardDataWorkspaceSize(d.dnn, p.w, p.y, p.conv, p.x, algo, bytes);
          },
          [&d, &p, w, dy, dx](int n, int* got, cudnnConvAlgoPerf* perf, void* ws, size_t bytes) {
            return lib.dnn.cudnnFindConvolutionBackwardDataAlgorithmEx(d.dnn, p.w, ptr(w), p.y, ptr(dy), p.conv, p.x,
                                                                       ptr(dx), n, got, perf, ws, bytes);
          }};
}

Search backwardFilterSearch(Device& d, ConvPlan& p, CUdeviceptr x, CUdeviceptr dy, CUdeviceptr dw) {
  return {"cudnnGetConvolutionBackwardFilterAlgorithmMaxCount", "cudnnGetConvolutionBackwardFilterWorkspaceSize",
          "cudnnFindConvolutionBackwardFilterAlgorithmEx",
          [&d](int* n) { return lib.dnn.cudnnGetConvolutionBackwardFilterAlgorithmMaxCount(d.dnn, n); },
          [&d, &p](int algo, size_t* bytes) {
            return lib.dnn.cudnnGetConvolutionBackwardFilterWorkspaceSize(d.dnn, p.x, p.y, p.conv, p.w, algo, bytes);
          },
          [&d, &p, x, dy, dw](int n, int* got, cudnnConvAlgoPerf* perf, void* ws, size_t bytes) {
            return lib.dnn.cudnnFindConvolutionBackwardFilterAlgorithmEx(d.dnn, p.x, ptr(x), p.y, ptr(dy), p.conv, p.w,
                                                                         ptr(dw), n, got, perf, ws, bytes);
          }};
}

// The one workspace buffer, grown to the largest plan's need (the old one freed in stream order).
void* workspace(Device& d, size_t bytes) {
  if (bytes > d.workspaceBytes) {
    if (d.workspace) check(lib.cu.cuMemFreeAsync(d.workspace, d.stream), "cuMemFreeAsync");
    d.workspace = 0;
    d.workspaceBytes = 0;
    check(lib.cu.cuMemAllocAsync(&d.workspace, bytes, d.stream), "cuMemAllocAsync (cuDNN workspace)");
    d.workspaceBytes = bytes;
  }
  return bytes ? ptr(d.workspace) : nullptr;
}

// x with the asymmetric part of the padding as a zero border, in `keep`; x itself when there is none.
CUdeviceptr bordered(const Geometry& g, CUdeviceptr x, std::optional<Scratch>& keep) {
  if (!g.bordered()) return x;
  const long long n = (long long)g.B * g.Hp * g.Wp * g.ci;
  keep.emplace(size_t(n) * sizeof(float));
  launchN(K_pad_hw, n, x, keep->ptr, (long long)g.H, (long long)g.W, (long long)g.ci, (long long)g.Hp,
          (long long)g.Wp, (long long)g.top, (long long)g.left, n);
  return keep->ptr;
}

}  // namespace

namespace ops {

void conv(int kind, CUdeviceptr a, CUdeviceptr b, CUdeviceptr c, const std::vector<int>& dims) {
  Device& d = device();
  const Geometry g = geometry(kind, dims);
  ConvPlan& p = plan(d, kind, g, dims);
  const Shape hwio = {g.FH, g.FW, g.ci, g.co}, krsc = {g.co, g.FH, g.FW, g.ci};
  const size_t filterBytes = size_t(g.co) * g.FH * g.FW * g.ci * sizeof(float);
  const float one = 1.f, zero = 0.f;
  if (kind == 0) {  // a = x, b = w (HWIO), c = y
    Scratch w(filterBytes);
    transpose(b, w.ptr, hwio, {3, 0, 1, 2}, 4);
    std::optional<Scratch> keep;
    const CUdeviceptr x = bordered(g, a, keep);
    if (p.algo < 0) choose(d, p, forwardSearch(d, p, x, w.ptr, c), describe(kind, dims));
    check(lib.dnn.cudnnConvolutionForward(d.dnn, &one, p.x, ptr(x), p.w, ptr(w.ptr), p.conv, p.algo,
                                          workspace(d, p.workspace), p.workspace, &zero, p.y, ptr(c)),
          "cudnnConvolutionForward");
  } else if (kind == 1) {  // a = dy, b = w (HWIO), c = dx
    Scratch w(filterBytes);
    transpose(b, w.ptr, hwio, {3, 0, 1, 2}, 4);
    std::optional<Scratch> keep;
    if (g.bordered()) keep.emplace(size_t(g.B) * g.Hp * g.Wp * g.ci * sizeof(float));
    const CUdeviceptr dx = keep ? keep->ptr : c;
    if (p.algo < 0) choose(d, p, backwardDataSearch(d, p, w.ptr, a, dx), describe(kind, dims));
    check(lib.dnn.cudnnConvolutionBackwardData(d.dnn, &one, p.w, ptr(w.ptr), p.y, ptr(a), p.conv, p.algo,
                                               workspace(d, p.workspace), p.workspace, &zero, p.x, ptr(dx)),
          "cudnnConvolutionBackwardData");
    if (keep) slice(dx, c, {g.B, g.Hp, g.Wp, g.ci}, {0, g.top, g.left, 0}, {g.B, g.H, g.W, g.ci}, 4);
  } else {  // a = x, b = dy, c = dw (HWIO)
    std::optional<Scratch> keep;
    const CUdeviceptr x = bordered(g, a, keep);
    Scratch dw(filterBytes);
    if (p.algo < 0) choose(d, p, backwardFilterSearch(d, p, x, b, dw.ptr), describe(kind, dims));
    check(lib.dnn.cudnnConvolutionBackwardFilter(d.dnn, &one, p.x, ptr(x), p.y, ptr(b), p.conv, p.algo,
                                                 workspace(d, p.workspace), p.workspace, &zero, p.w, ptr(dw.ptr)),
          "cudnnConvolutionBackwardFilter");
    transpose(dw.ptr, c, krsc, {1, 2, 3, 0}, 4);
  }
}

}  // namespace ops
