// Shared N-API glue of bnlab's native addon. Every kernel takes the wasm heap (a Uint8Array
// over the tfjs wasm backend's memory) and byte offsets into it, and works in place.
#pragma once
#include <node_api.h>

#include <cstdint>

struct Args {
  napi_env env;
  napi_value v[16];
  size_t n = 16;
  bool ok = true;
  Args(napi_env e, napi_callback_info info, size_t want) : env(e) {
    napi_get_cb_info(env, info, &n, v, nullptr, nullptr);
    if (n != want) fail("wrong number of arguments");
  }
  void fail(const char* msg) {
    if (ok) napi_throw_error(env, nullptr, msg);
    ok = false;
  }
  double num(size_t i) {
    double d = 0;
    if (napi_get_value_double(env, v[i], &d) != napi_ok) fail("expected a number");
    return d;
  }
  int64_t i64(size_t i) { return int64_t(num(i)); }
  char* heap(size_t i) {
    void* data = nullptr;
    size_t len = 0;
    napi_typedarray_type type;
    if (napi_get_typedarray_info(env, v[i], &type, &len, &data, nullptr, nullptr) != napi_ok || type != napi_uint8_array)
      fail("heap must be a Uint8Array");
    return static_cast<char*>(data);
  }
  float* f32(char* heap, size_t i) { return reinterpret_cast<float*>(heap + size_t(num(i))); }
};

napi_value Conv(napi_env env, napi_callback_info info);
napi_value ConvImpl(napi_env env, napi_callback_info info);
napi_value BnForward(napi_env env, napi_callback_info info);
napi_value BnBackward(napi_env env, napi_callback_info info);
napi_value BnApply(napi_env env, napi_callback_info info);
napi_value BnApplyAddRelu(napi_env env, napi_callback_info info);
napi_value Sgd(napi_env env, napi_callback_info info);
napi_value Ema(napi_env env, napi_callback_info info);
napi_value AddRelu(napi_env env, napi_callback_info info);
napi_value ReluGrad(napi_env env, napi_callback_info info);
napi_value AddSame(napi_env env, napi_callback_info info);
napi_value MatMul(napi_env env, napi_callback_info info);
napi_value Gap(napi_env env, napi_callback_info info);
napi_value GapGrad(napi_env env, napi_callback_info info);
napi_value MaxPoolGrad(napi_env env, napi_callback_info info);
