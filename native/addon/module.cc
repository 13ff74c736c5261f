// bnlab's native addon: oneDNN convolutions (conv.cc) and GEMM (matmul.cc), OpenMP BatchNorm
// (bn.cc), one-pass SGD (sgd.cc) and EMA (ema.cc) updates, the residual add+ReLU and global
// average pooling (eltwise.cc), max pooling's gradient (pool.cc) for the tfjs wasm backend, in place on its heap.
// Loaded by src/backend/native-addon.ts.
#include <omp.h>
#include <oneapi/dnnl/dnnl.h>

#include <string>

#include "addon.h"

namespace {

napi_value SetThreads(napi_env env, napi_callback_info info) {
  Args a(env, info, 1);
  if (!a.ok) return nullptr;
  const int n = int(a.num(0));
  omp_set_num_threads(n < 1 ? 1 : n);
  return nullptr;
}

napi_value Version(napi_env env, napi_callback_info) {
  const dnnl_version_t* v = dnnl_version();
  std::string s = "oneDNN " + std::to_string(v->major) + "." + std::to_string(v->minor) + "." +
                  std::to_string(v->patch) + ", OpenMP " + std::to_string(omp_get_max_threads()) + " threads";
  napi_value out;
  napi_create_string_utf8(env, s.c_str(), s.size(), &out);
  return out;
}

}  // namespace

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"conv", nullptr, Conv, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"impl", nullptr, ConvImpl, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"bnForward", nullptr, BnForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"bnBackward", nullptr, BnBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"bnApply", nullptr, BnApply, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"bnApplyAddRelu", nullptr, BnApplyAddRelu, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sgd", nullptr, Sgd, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"ema", nullptr, Ema, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"addRelu", nullptr, AddRelu, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"matmul", nullptr, MatMul, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"gap", nullptr, Gap, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"gapGrad", nullptr, GapGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"maxPoolGrad", nullptr, MaxPoolGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"add", nullptr, AddSame, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"reluGrad", nullptr, ReluGrad, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"version", nullptr, Version, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
