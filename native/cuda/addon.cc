// bnlab's CUDA device layer as a Node addon: init() plus every method of src/backend/cuda/device.ts'
// Device interface under the same name with the same arguments (buffers are device addresses as
// numbers). Loaded by src/backend/cuda/addon.ts. Everything here converts arguments and results;
// errors thrown below (std::runtime_error) become JS Errors at this boundary.
// The CUDA context is current on the thread that called init(): call from that thread only.
#include <node_api.h>

#include <cmath>

#include "addon.h"

namespace {

constexpr double MAX_SAFE = 9007199254740992.0;  // 2^53: addresses and sizes are exact below it

void napiCheck(napi_status s, const char* call) {
  if (s != napi_ok) fail(std::string("bnlab cuda: N-API ") + call + " failed");
}

struct Args {
  napi_env env;
  std::string fn;
  napi_value v[16];
  size_t n = 16;
  Args(napi_env e, napi_callback_info info, const char* name, size_t want) : env(e), fn(name) {
    napiCheck(napi_get_cb_info(env, info, &n, v, nullptr, nullptr), "napi_get_cb_info");
    if (n != want)
      fail("bnlab cuda: " + fn + " takes " + std::to_string(want) + " arguments, got " + std::to_string(n));
  }
  [[noreturn]] void bad(size_t i, const char* expected) {
    fail("bnlab cuda: " + fn + ": argument " + std::to_string(i + 1) + " must be " + expected);
  }
  double number(size_t i) {
    double d = 0;
    if (napi_get_value_double(env, v[i], &d) != napi_ok) bad(i, "a number");
    return d;
  }
  long long count(size_t i) {
    const double d = number(i);
    if (!(d >= 0 && d < MAX_SAFE && d == std::floor(d))) bad(i, "an integer >= 0");
    return (long long)d;
  }
  CUdeviceptr buffer(size_t i) { return CUdeviceptr(count(i)); }
  bool flag(size_t i) {
    napi_valuetype t;
    napiCheck(napi_typeof(env, v[i], &t), "napi_typeof");
    if (t == napi_number) return number(i) != 0;
    bool b = false;
    if (t != napi_boolean || napi_get_value_bool(env, v[i], &b) != napi_ok) bad(i, "a boolean");
    return b;
  }
  std::string str(size_t i) { return stringOf(v[i], i); }
  std::string stringOf(napi_value value, size_t i) {
    size_t len = 0;
    if (napi_get_value_string_utf8(env, value, nullptr, 0, &len) != napi_ok) bad(i, "a string");
    std::string s(len, '\0');
    napiCheck(napi_get_value_string_utf8(env, value, &s[0], len + 1, &len), "napi_get_value_string_utf8");
    return s;
  }
  DType dtype(size_t i) {
    const std::string s = str(i);
    if (s == "float32") return F32;
    if (s == "int32") return I32;
    if (s == "bool") return BOOL;
    bad(i, "'float32', 'int32' or 'bool'");
  }
  Shape shape(size_t i) {
    bool isArray = false;
    uint32_t len = 0;
    if (napi_is_array(env, v[i], &isArray) != napi_ok || !isArray) bad(i, "an array of integers");
    napiCheck(napi_get_array_length(env, v[i], &len), "napi_get_array_length");
    Shape s(len);
    for (uint32_t k = 0; k < len; k++) {
      napi_value e;
      double d = -1;
      napiCheck(napi_get_element(env, v[i], k, &e), "napi_get_element");
      if (napi_get_value_double(env, e, &d) != napi_ok || !(d >= 0 && d < MAX_SAFE && d == std::floor(d)))
        bad(i, "an array of integers >= 0");
      s[k] = (long long)d;
    }
    return s;
  }
  // A typed array's first element and its length in elements; `type` checked.
  void* typed(size_t i, napi_typedarray_type type, const char* what, size_t* length) {
    bool is = false;
    napi_typedarray_type t;
    void* data = nullptr;
    if (napi_is_typedarray(env, v[i], &is) != napi_ok || !is ||
        napi_get_typedarray_info(env, v[i], &t, length, &data, nullptr, nullptr) != napi_ok || t != type)
      bad(i, what);
    return data;
  }
  // Any ArrayBufferView's bytes.
  const void* view(size_t i, size_t* bytes) {
    bool is = false;
    void* data = nullptr;
    if (napi_is_dataview(env, v[i], &is) == napi_ok && is) {
      napiCheck(napi_get_dataview_info(env, v[i], bytes, &data, nullptr, nullptr), "napi_get_dataview_info");
      return data;
    }
    napi_typedarray_type t;
    size_t length = 0;
    if (napi_is_typedarray(env, v[i], &is) != napi_ok || !is ||
        napi_get_typedarray_info(env, v[i], &t, &length, &data, nullptr, nullptr) != napi_ok)
      bad(i, "an ArrayBufferView (typed array or DataView)");
    *bytes = length * elementBytes(t, i);
    return data;
  }
  size_t elementBytes(napi_typedarray_type t, size_t i) {
    switch (t) {
      case napi_int8_array:
      case napi_uint8_array:
      case napi_uint8_clamped_array: return 1;
      case napi_int16_array:
      case napi_uint16_array: return 2;
      case napi_int32_array:
      case napi_uint32_array:
      case napi_float32_array: return 4;
      case napi_float64_array:
      case napi_bigint64_array:
      case napi_biguint64_array: return 8;
      default: bad(i, "a typed array of a known element type");
    }
  }
};

napi_value number(napi_env env, double d) {
  napi_value out;
  napiCheck(napi_create_double(env, d, &out), "napi_create_double");
  return out;
}
napi_value string(napi_env env, const std::string& s) {
  napi_value out;
  napiCheck(napi_create_string_utf8(env, s.c_str(), s.size(), &out), "napi_create_string_utf8");
  return out;
}
void set(napi_env env, napi_value obj, const char* key, napi_value value) {
  napiCheck(napi_set_named_property(env, obj, key, value), "napi_set_named_property");
}
napi_value object(napi_env env) {
  napi_value out;
  napiCheck(napi_create_object(env, &out), "napi_create_object");
  return out;
}

// Runs a method's body; what it throws becomes a JS Error. A null result reads as undefined in JS.
template <typename Body>
napi_value method(napi_env env, napi_callback_info info, const char* name, size_t nargs, Body body) {
  try {
    Args a(env, info, name, nargs);
    return body(a);
  } catch (const std::exception& e) {
    napi_throw_error(env, nullptr, e.what());
    return nullptr;
  }
}

napi_value Init(napi_env env, napi_callback_info info) {
  return method(env, info, "init", 1, [&](Args& a) -> napi_value {
    napi_valuetype type;
    if (napi_typeof(env, a.v[0], &type) != napi_ok || type != napi_object) a.bad(0, "an options object");
    InitOptions o;
    auto option = [&](const char* key, napi_valuetype want) {
      napi_value value;
      napi_valuetype t = napi_undefined;
      if (napi_get_named_property(env, a.v[0], key, &value) != napi_ok || napi_typeof(env, value, &t) != napi_ok ||
          t != want)
        fail(std::string("bnlab cuda: init: option '") + key + "' must be a " +
             (want == napi_string ? "string" : "boolean"));
      return value;
    };
    auto text = [&](const char* key) { return a.stringOf(option(key, napi_string), 0); };
    auto boolean = [&](const char* key) {
      bool b = false;
      napiCheck(napi_get_value_bool(env, option(key, napi_boolean), &b), "napi_get_value_bool");
      return b;
    };
    o.libs = {text("driver"), text("nvrtc"), text("cublas"), text("cudnn")};
    o.kernelDir = text("kernelDir");
    o.cacheDir = text("cacheDir");
    o.tf32 = boolean("tf32");
    o.deterministic = boolean("deterministic");
    initDevice(o);
    return nullptr;
  });
}

napi_value Version(napi_env env, napi_callback_info info) {
  return method(env, info, "version", 0, [&](Args&) {
    return string(env, "bnlab CUDA device layer (CUDA driver, NVRTC, cuBLAS, cuDNN 9 loaded by init())");
  });
}

napi_value Info(napi_env env, napi_callback_info info) {
  return method(env, info, "info", 0, [&](Args&) {
    const Device& d = device();
    napi_value out = object(env), cc, libs = object(env);
    set(env, out, "name", string(env, d.name));
    napiCheck(napi_create_array_with_length(env, 2, &cc), "napi_create_array_with_length");
    napiCheck(napi_set_element(env, cc, 0, number(env, d.ccMajor)), "napi_set_element");
    napiCheck(napi_set_element(env, cc, 1, number(env, d.ccMinor)), "napi_set_element");
    set(env, out, "cc", cc);
    for (const auto& [part, what] : d.libs) set(env, libs, part.c_str(), string(env, what));
    set(env, out, "libs", libs);
    set(env, out, "totalBytes", number(env, double(d.totalBytes)));
    return out;
  });
}

napi_value MemoryInfo(napi_env env, napi_callback_info info) {
  return method(env, info, "memory", 0, [&](Args&) {
    const Memory m = ops::memory();
    napi_value out = object(env);
    set(env, out, "inUse", number(env, double(m.inUse)));
    set(env, out, "pooled", number(env, double(m.pooled)));
    set(env, out, "free", number(env, double(m.free)));
    set(env, out, "total", number(env, double(m.total)));
    return out;
  });
}

napi_value Alloc(napi_env env, napi_callback_info info) {
  return method(env, info, "alloc", 1, [&](Args& a) { return number(env, double(ops::alloc(size_t(a.count(0))))); });
}

napi_value Free(napi_env env, napi_callback_info info) {
  return method(env, info, "free", 1, [&](Args& a) -> napi_value {
    ops::release(a.buffer(0));
    return nullptr;
  });
}

napi_value Upload(napi_env env, napi_callback_info info) {
  return method(env, info, "upload", 2, [&](Args& a) -> napi_value {
    size_t bytes = 0;
    const void* src = a.view(1, &bytes);
    ops::upload(a.buffer(0), src, bytes);
    return nullptr;
  });
}

napi_value downloaded(napi_env env, Args& a) {
  const size_t bytes = size_t(a.count(1));
  void* data = nullptr;
  napi_value ab, out;
  napiCheck(napi_create_arraybuffer(env, bytes, &data, &ab), "napi_create_arraybuffer");
  ops::download(a.buffer(0), data, bytes);
  napiCheck(napi_create_typedarray(env, napi_uint8_array, bytes, ab, 0, &out), "napi_create_typedarray");
  return out;
}

napi_value DownloadSync(napi_env env, napi_callback_info info) {
  return method(env, info, "downloadSync", 2, [&](Args& a) { return downloaded(env, a); });
}

// The copy itself is synchronous (downloadSync's); the promise only carries its result or error.
napi_value Download(napi_env env, napi_callback_info info) {
  napi_deferred deferred;
  napi_value promise, result;
  if (napi_create_promise(env, &deferred, &promise) != napi_ok) return nullptr;
  try {
    Args a(env, info, "download", 2);
    result = downloaded(env, a);
    napi_resolve_deferred(env, deferred, result);
  } catch (const std::exception& e) {
    napi_value message, error;
    napi_create_string_utf8(env, e.what(), NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, nullptr, message, &error);
    napi_reject_deferred(env, deferred, error);
  }
  return promise;
}

napi_value Copy(napi_env env, napi_callback_info info) {
  return method(env, info, "copy", 5, [&](Args& a) -> napi_value {
    ops::copy(a.buffer(0) + a.buffer(1), a.buffer(2) + a.buffer(3), size_t(a.count(4)));
    return nullptr;
  });
}

napi_value Fill(napi_env env, napi_callback_info info) {
  return method(env, info, "fill", 4, [&](Args& a) -> napi_value {
    ops::fill(a.buffer(0), size_t(a.count(1)), a.dtype(2), a.number(3));
    return nullptr;
  });
}

napi_value Sync(napi_env env, napi_callback_info info) {
  return method(env, info, "sync", 0, [&](Args&) -> napi_value {
    ops::sync();
    return nullptr;
  });
}

napi_value Conv(napi_env env, napi_callback_info info) {
  return method(env, info, "conv", 5, [&](Args& a) -> napi_value {
    size_t len = 0;
    const int* dims = static_cast<const int*>(a.typed(4, napi_int32_array, "an Int32Array of 15 dims", &len));
    ops::conv(int(a.count(0)), a.buffer(1), a.buffer(2), a.buffer(3), std::vector<int>(dims, dims + len));
    return nullptr;
  });
}

napi_value BnForward(napi_env env, napi_callback_info info) {
  return method(env, info, "bnForward", 11, [&](Args& a) -> napi_value {
    ops::bnForward(a.buffer(0), a.buffer(1), a.buffer(2), a.buffer(3), a.buffer(4), a.buffer(5), a.count(6), a.count(7),
              a.count(8), float(a.number(9)), a.flag(10));
    return nullptr;
  });
}

napi_value BnBackward(napi_env env, napi_callback_info info) {
  return method(env, info, "bnBackward", 14, [&](Args& a) -> napi_value {
    ops::bnBackward(a.buffer(0), a.buffer(1), a.buffer(2), a.buffer(3), a.buffer(4), a.buffer(5), a.buffer(6), a.buffer(7),
               a.buffer(8), a.count(9), a.count(10), a.count(11), float(a.number(12)), a.flag(13));
    return nullptr;
  });
}

napi_value BnApply(napi_env env, napi_callback_info info) {
  return method(env, info, "bnApply", 7, [&](Args& a) -> napi_value {
    ops::bnApply(a.buffer(0), a.buffer(1), a.buffer(2), a.buffer(3), a.count(4), a.count(5), a.flag(6));
    return nullptr;
  });
}

napi_value BnApplyAddRelu(napi_env env, napi_callback_info info) {
  return method(env, info, "bnApplyAddRelu", 7, [&](Args& a) -> napi_value {
    ops::bnApplyAddRelu(a.buffer(0), a.buffer(1), a.buffer(2), a.buffer(3), a.buffer(4), a.count(5), a.count(6));
    return nullptr;
  });
}

napi_value Sgd(napi_env env, napi_callback_info info) {
  return method(env, info, "sgd", 10, [&](Args& a) -> napi_value {
    ops::sgd(a.buffer(0), a.buffer(1), a.buffer(2), a.buffer(3), a.buffer(4), a.count(5), float(a.number(6)),
        float(a.number(7)), float(a.number(8)), a.flag(9));
    return nullptr;
  });
}

napi_value Ema(napi_env env, napi_callback_info info) {
  return method(env, info, "ema", 10, [&](Args& a) -> napi_value {
    const long long G = a.count(7);
    size_t len = 0;
    const double* counts =
        static_cast<const double*>(a.typed(9, napi_float64_array, "a Float64Array of group counts", &len));
    if ((long long)len != G) a.bad(9, "a Float64Array with one count per group (G entries)");
    ops::ema(a.buffer(0), a.buffer(1), a.buffer(2), a.buffer(3), a.buffer(4), a.buffer(5), a.count(6), G, a.number(8),
        counts);
    return nullptr;
  });
}

napi_value AddRelu(napi_env env, napi_callback_info info) {
  return method(env, info, "addRelu", 4, [&](Args& a) -> napi_value {
    ops::addRelu(a.buffer(0), a.buffer(1), a.buffer(2), a.count(3));
    return nullptr;
  });
}

napi_value ReluGrad(napi_env env, napi_callback_info info) {
  return method(env, info, "reluGrad", 4, [&](Args& a) -> napi_value {
    ops::reluGrad(a.buffer(0), a.buffer(1), a.buffer(2), a.count(3));
    return nullptr;
  });
}

napi_value MatMul(napi_env env, napi_callback_info info) {
  return method(env, info, "matmul", 10, [&](Args& a) -> napi_value {
    ops::matmul(a.buffer(0), a.buffer(1), a.buffer(2), a.count(3), a.count(4), a.count(5), a.count(6), a.count(7),
           a.flag(8), a.flag(9));
    return nullptr;
  });
}

napi_value Gap(napi_env env, napi_callback_info info) {
  return method(env, info, "gap", 5, [&](Args& a) -> napi_value {
    ops::gap(a.buffer(0), a.buffer(1), a.count(2), a.count(3), a.count(4));
    return nullptr;
  });
}

napi_value GapGrad(napi_env env, napi_callback_info info) {
  return method(env, info, "gapGrad", 5, [&](Args& a) -> napi_value {
    ops::gapGrad(a.buffer(0), a.buffer(1), a.count(2), a.count(3), a.count(4));
    return nullptr;
  });
}

// The pooling geometry from argument `first` on: B H W C OH OW FH FW sh sw pt pl.
PoolDims poolDims(Args& a, size_t first) {
  return {a.count(first),     a.count(first + 1), a.count(first + 2), a.count(first + 3),
          a.count(first + 4), a.count(first + 5), a.count(first + 6), a.count(first + 7),
          a.count(first + 8), a.count(first + 9), a.count(first + 10), a.count(first + 11)};
}

napi_value MaxPool(napi_env env, napi_callback_info info) {
  return method(env, info, "maxPool", 14, [&](Args& a) -> napi_value {
    ops::maxPool(a.buffer(0), a.buffer(1), poolDims(a, 2));
    return nullptr;
  });
}

napi_value MaxPoolGrad(napi_env env, napi_callback_info info) {
  return method(env, info, "maxPoolGrad", 15, [&](Args& a) -> napi_value {
    ops::maxPoolGrad(a.buffer(0), a.buffer(1), a.buffer(2), poolDims(a, 3));
    return nullptr;
  });
}

napi_value Unary(napi_env env, napi_callback_info info) {
  return method(env, info, "unary", 4, [&](Args& a) -> napi_value {
    ops::unary(a.str(0), a.buffer(1), a.buffer(2), a.count(3));
    return nullptr;
  });
}

napi_value Binary(napi_env env, napi_callback_info info) {
  return method(env, info, "binary", 8, [&](Args& a) -> napi_value {
    ops::binary(a.str(0), a.buffer(1), a.buffer(2), a.buffer(3), a.shape(4), a.shape(5), a.shape(6), a.dtype(7));
    return nullptr;
  });
}

napi_value Reduce(napi_env env, napi_callback_info info) {
  return method(env, info, "reduce", 6, [&](Args& a) -> napi_value {
    ops::reduce(a.str(0), a.buffer(1), a.buffer(2), a.count(3), a.count(4), a.dtype(5));
    return nullptr;
  });
}

napi_value Cast(napi_env env, napi_callback_info info) {
  return method(env, info, "cast", 5, [&](Args& a) -> napi_value {
    ops::cast(a.buffer(0), a.buffer(1), a.count(2), a.dtype(3), a.dtype(4));
    return nullptr;
  });
}

napi_value Slice(napi_env env, napi_callback_info info) {
  return method(env, info, "slice", 6, [&](Args& a) -> napi_value {
    ops::slice(a.buffer(0), a.buffer(1), a.shape(2), a.shape(3), a.shape(4), a.count(5));
    return nullptr;
  });
}

napi_value Transpose(napi_env env, napi_callback_info info) {
  return method(env, info, "transpose", 5, [&](Args& a) -> napi_value {
    ops::transpose(a.buffer(0), a.buffer(1), a.shape(2), a.shape(3), a.count(4));
    return nullptr;
  });
}

napi_value OneHot(napi_env env, napi_callback_info info) {
  return method(env, info, "oneHot", 6, [&](Args& a) -> napi_value {
    ops::oneHot(a.buffer(0), a.buffer(1), a.count(2), a.count(3), float(a.number(4)), float(a.number(5)));
    return nullptr;
  });
}

}  // namespace

napi_value Register(napi_env env, napi_value exports) {
  const std::pair<const char*, napi_callback> methods[] = {
      {"init", Init},
      {"version", Version},
      {"info", Info},
      {"memory", MemoryInfo},
      {"alloc", Alloc},
      {"free", Free},
      {"upload", Upload},
      {"downloadSync", DownloadSync},
      {"download", Download},
      {"copy", Copy},
      {"fill", Fill},
      {"sync", Sync},
      {"conv", Conv},
      {"bnForward", BnForward},
      {"bnBackward", BnBackward},
      {"bnApply", BnApply},
      {"bnApplyAddRelu", BnApplyAddRelu},
      {"sgd", Sgd},
      {"ema", Ema},
      {"addRelu", AddRelu},
      {"reluGrad", ReluGrad},
      {"matmul", MatMul},
      {"gap", Gap},
      {"gapGrad", GapGrad},
      {"maxPool", MaxPool},
      {"maxPoolGrad", MaxPoolGrad},
      {"unary", Unary},
      {"binary", Binary},
      {"reduce", Reduce},
      {"cast", Cast},
      {"slice", Slice},
      {"transpose", Transpose},
      {"oneHot", OneHot},
  };
  std::vector<napi_property_descriptor> props;  // enumerable: Object.keys lists the methods
  for (const auto& [name, fn] : methods)
    props.push_back({name, nullptr, fn, nullptr, nullptr, nullptr, napi_enumerable, nullptr});
  napi_define_properties(env, exports, props.size(), props.data());
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Register)
