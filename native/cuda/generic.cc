// The generic ops behind tfjs' stock kernels (native/cuda/kernels/eltwise.cu, reduce.cu,
// layout.cu): op names become the kernels' codes, shapes become the strides they index with.
#include <algorithm>

#include "addon.h"

namespace {

// A name's code is its index here, the order of src/backend/cuda/device.ts' UNARY, BINARY and
// REDUCE lists, which the kernels' switch statements follow.
const std::vector<std::string> UNARY_OPS = {"neg",    "exp", "log",    "rsqrt",      "sqrt",    "relu",
                                            "abs",    "square", "reciprocal", "sigmoid", "step"};
const std::vector<std::string> BINARY_OPS = {"add",          "sub",         "mul",    "div",         "maximum",
                                             "minimum",      "pow",         "squaredDifference",  "equal",
                                             "notEqual",     "greater",     "greaterEqual", "less", "lessEqual"};
const std::vector<std::string> REDUCE_OPS = {"sum", "max", "min", "mean", "argMax", "argMin"};

int opCode(const std::vector<std::string>& ops, const std::string& op, const char* what) {
  const auto it = std::find(ops.begin(), ops.end(), op);
  if (it == ops.end()) fail(std::string("bnlab cuda: ") + what + ": unknown op '" + op + "'");
  return int(it - ops.begin());
}

long long elements(const Shape& s) {
  long long n = 1;
  for (long long d : s) n *= d;
  return n;
}

void checkRank(const char* op, size_t rank) {
  if (rank > size_t(MAX_RANK))
    fail(std::string("bnlab cuda: ") + op + ": rank " + std::to_string(rank) + " > " + std::to_string(MAX_RANK));
}

Shape rowMajorStrides(const Shape& s) {
  Shape st(s.size());
  long long step = 1;
  for (size_t d = s.size(); d-- > 0;) {
    st[d] = step;
    step *= s[d];
  }
  return st;
}

// An index map over `shape` for one or two operands, with size-1 dimensions dropped and
// neighbours merged wherever every operand is contiguous across them: same-shape operands end as
// a single dimension, and the kernels' per-element index loop is as short as it can be.
struct Map {
  int rank = 0;
  long long shape[MAX_RANK] = {}, stride[2][MAX_RANK] = {};
};
Map collapse(const Shape& shape, const Shape& s0, const Shape* s1) {
  Map m;
  for (size_t d = 0; d < shape.size(); d++) {
    if (shape[d] == 1) continue;
    const int last = m.rank - 1;
    if (last >= 0 && m.stride[0][last] == s0[d] * shape[d] && (!s1 || m.stride[1][last] == (*s1)[d] * shape[d])) {
      m.shape[last] *= shape[d];
      m.stride[0][last] = s0[d];
      if (s1) m.stride[1][last] = (*s1)[d];
    } else {
      m.shape[m.rank] = shape[d];
      m.stride[0][m.rank] = s0[d];
      if (s1) m.stride[1][m.rank] = (*s1)[d];
      m.rank++;
    }
  }
  return m;
}

void gather(CUdeviceptr x, CUdeviceptr y, const Shape& shape, const Shape& strides, long long base, long long bytes,
            const char* op) {
  if (bytes != 1 && bytes != 2 && bytes != 4 && bytes != 8)
    fail(std::string("bnlab cuda: ") + op + ": elements of " + std::to_string(bytes) + " bytes (1, 2, 4 or 8)");
  const Kernel k = bytes == 1 ? K_gather1 : bytes == 2 ? K_gather2 : bytes == 4 ? K_gather4 : K_gather8;
  const Map m = collapse(shape, strides, nullptr);
  Strided s{};
  s.rank = m.rank;
  std::copy(m.shape, m.shape + MAX_RANK, s.shape);
  std::copy(m.stride[0], m.stride[0] + MAX_RANK, s.stride);
  const long long n = elements(shape);
  launchN(k, n, x, y, s, base, n);
}

}  // namespace

namespace ops {

void unary(const std::string& op, CUdeviceptr x, CUdeviceptr y, long long n) {
  launchN(K_unary_f32, n, opCode(UNARY_OPS, op, "unary"), x, y, n);
}

void binary(const std::string& op, CUdeviceptr a, CUdeviceptr b, CUdeviceptr y, const Shape& aShape,
            const Shape& bShape, const Shape& outShape, DType t) {
  const int code = opCode(BINARY_OPS, op, "binary");
  const size_t r = outShape.size();
  checkRank("binary", r);
  // numpy broadcasting: pad on the left with 1s; a dimension of 1 repeats (stride 0)
  auto strides = [&](const Shape& in, const char* which) {
    if (in.size() > r) fail(std::string("bnlab cuda: binary: ") + which + " has more dimensions than the output");
    Shape padded(r - in.size(), 1), st(r);
    padded.insert(padded.end(), in.begin(), in.end());
    long long step = 1;
    for (size_t d = r; d-- > 0;) {
      if (padded[d] != outShape[d] && padded[d] != 1)
        fail(std::string("bnlab cuda: binary: ") + which + "'s dimension " + std::to_string(d) + " (" +
             std::to_string(padded[d]) + ") does not broadcast to " + std::to_string(outShape[d]));
      st[d] = padded[d] == 1 ? 0 : step;
      step *= padded[d];
    }
    return st;
  };
  const Shape sa = strides(aShape, "a"), sb = strides(bShape, "b");
  const Map m = collapse(outShape, sa, &sb);
  Bcast bc{};
  bc.rank = m.rank;
  std::copy(m.shape, m.shape + MAX_RANK, bc.shape);
  std::copy(m.stride[0], m.stride[0] + MAX_RANK, bc.sa);
  std::copy(m.stride[1], m.stride[1] + MAX_RANK, bc.sb);
  const long long n = elements(outShape);
  launchN(t == F32 ? K_binary_f32 : t == I32 ? K_binary_i32 : K_binary_u8, n, code, a, b, y, bc, n);
}

// One block per row; its size depends on `inner` alone, and with it the summation order.
void reduce(const std::string& op, CUdeviceptr x, CUdeviceptr y, long long outer, long long inner, DType t) {
  const int code = opCode(REDUCE_OPS, op, "reduce");
  if (outer <= 0) return;
  unsigned threads = 32;
  while (threads < inner && threads < 256) threads *= 2;
  const Dim grid{unsigned(std::min(outer, 1LL << 20)), 1, 1};
  launch(t == F32 ? K_reduce_f32 : t == I32 ? K_reduce_i32 : K_reduce_u8, grid, Dim{threads, 1, 1}, code, x, y, outer,
         inner);
}

void cast(CUdeviceptr x, CUdeviceptr y, long long n, DType from, DType to) {
  if (from == to) {
    copy(y, x, size_t(n) * dtypeBytes(from));
    return;
  }
  launchN(K_cast, n, x, y, n, int(from), int(to));
}

void slice(CUdeviceptr x, CUdeviceptr y, const Shape& shape, const Shape& begin, const Shape& size, long long bytes) {
  checkRank("slice", shape.size());
  if (begin.size() != shape.size() || size.size() != shape.size())
    fail("bnlab cuda: slice: shape, begin and size must have the same length");
  const Shape in = rowMajorStrides(shape);
  long long base = 0;
  for (size_t d = 0; d < shape.size(); d++) {
    if (begin[d] + size[d] > shape[d])
      fail("bnlab cuda: slice: begin + size exceeds the shape in dimension " + std::to_string(d));
    base += begin[d] * in[d];
  }
  gather(x, y, size, in, base, bytes, "slice");
}

void transpose(CUdeviceptr x, CUdeviceptr y, const Shape& shape, const Shape& perm, long long bytes) {
  const size_t r = shape.size();
  checkRank("transpose", r);
  Shape sorted = perm;
  std::sort(sorted.begin(), sorted.end());
  bool isPermutation = sorted.size() == r;
  for (size_t d = 0; isPermutation && d < r; d++) isPermutation = sorted[d] == (long long)d;
  if (!isPermutation) fail("bnlab cuda: transpose: perm must order the " + std::to_string(r) + " dimensions");
  const Shape in = rowMajorStrides(shape);
  Shape out(r), st(r);
  for (size_t d = 0; d < r; d++) {
    out[d] = shape[size_t(perm[d])];
    st[d] = in[size_t(perm[d])];
  }
  gather(x, y, out, st, 0, bytes, "transpose");
}

void oneHot(CUdeviceptr indices, CUdeviceptr y, long long n, long long depth, float on, float off) {
  launchN(K_one_hot, n * depth, indices, y, n * depth, depth, on, off);
}

}  // namespace ops
