// bnlab's native JPEG path for the image-folder pipeline: libjpeg-turbo decodes only the rows
// and (iMCU-aligned) columns an augmentation plan needs, optionally at 1/2, 1/4 or 1/8 scale in
// the DCT domain, then the crop is resampled as torchvision does it (PIL's bilinear with its
// antialiasing support, on the crop alone), mirrored and normalized, all in one call.
// Why: sharp/libvips spends about as long setting up a pipeline as decoding a 500x375 JPEG;
// the same libjpeg-turbo called directly decodes twice as fast (docs/data.md).
// Anything unusual (CMYK, a libjpeg warning such as a truncated file, an error) throws, and the
// caller decodes that file with sharp instead, so failure accounting is sharp's.
// Built by scripts/build-native.sh into native/jpeg/bnlab_jpeg.node; loaded by decode-worker.mjs.
#include <cstddef>  // jpeglib.h needs size_t and FILE declared first
#include <cstdio>

#include <jpeglib.h>
#include <node_api.h>

#include <algorithm>
#include <cmath>
#include <csetjmp>
#include <string>
#include <vector>

namespace {

struct Err {
  jpeg_error_mgr mgr;
  jmp_buf jump;
  std::string message;
};

void onError(j_common_ptr c) {
  Err* e = reinterpret_cast<Err*>(c->err);
  char buf[JMSG_LENGTH_MAX];
  c->err->format_message(c, buf);
  e->message = buf;
  longjmp(e->jump, 1);
}

// A warning (corrupt data, premature end) means libjpeg made up pixels: let sharp judge the file.
void onMessage(j_common_ptr c, int level) {
  if (level < 0) onError(c);
}

struct Box {
  double left, top, width, height;
};

// PIL's precompute_coeffs for the bilinear ("triangle") filter: output pixel i of `out` covers
// input [in0 + i*scale, in0 + (i+1)*scale) of an input of `inSize` pixels; when shrinking, the
// filter widens by the scale (antialiasing).
struct Coeffs {
  std::vector<int> start, count;
  std::vector<float> w;
  int support;  // max taps per output
};

Coeffs coeffs(double in0, double in1, int inSize, int outSize) {
  const double scale = (in1 - in0) / outSize;
  const double filterscale = std::max(scale, 1.0);
  const double support = 1.0 * filterscale;
  Coeffs k;
  k.support = int(std::ceil(support)) * 2 + 1;
  k.start.resize(outSize);
  k.count.resize(outSize);
  k.w.assign(size_t(outSize) * k.support, 0.f);
  for (int i = 0; i < outSize; i++) {
    const double center = in0 + (i + 0.5) * scale;
    int xmin = int(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = int(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    float* w = &k.w[size_t(i) * k.support];
    double ww = 0;
    for (int x = 0; x < xmax; x++) {
      const double t = std::fabs((x + xmin - center + 0.5) / filterscale);
      ww += t < 1 ? 1 - t : 0;
    }
    for (int x = 0; x < xmax; x++) {
      const double t = std::fabs((x + xmin - center + 0.5) / filterscale);
      w[x] = float(ww != 0 ? (t < 1 ? 1 - t : 0) / ww : 0);
    }
    k.start[i] = xmin;
    k.count[i] = std::max(xmax, 0);
  }
  return k;
}

struct Args {
  napi_env env;
  napi_value v[8];
  size_t n = 8;
  Args(napi_env e, napi_callback_info info) : env(e) { napi_get_cb_info(env, info, &n, v, nullptr, nullptr); }
  double num(size_t i) {
    double d = 0;
    napi_get_value_double(env, v[i], &d);
    return d;
  }
  bool isNull(size_t i) {
    napi_valuetype t;
    napi_typeof(env, v[i], &t);
    return t == napi_null || t == napi_undefined;
  }
  // A plain array of numbers of length len.
  bool nums(size_t i, double* out, uint32_t len) {
    uint32_t have = 0;
    if (napi_get_array_length(env, v[i], &have) != napi_ok || have != len) return false;
    for (uint32_t k = 0; k < len; k++) {
      napi_value x;
      napi_get_element(env, v[i], k, &x);
      if (napi_get_value_double(env, x, &out[k]) != napi_ok) return false;
    }
    return true;
  }
};

napi_value fail(napi_env env, const std::string& msg) {
  napi_throw_error(env, nullptr, msg.c_str());
  return nullptr;
}

// decode(jpeg: Uint8Array, box: [l,t,w,h] | null, outW, outH, win: [l,t,w,h] | null, flip,
//        shrink, norm: [m0,m1,m2,s0,s1,s2] | null) -> { data, width, height }
// box: source crop (null = whole image), resized to outW x outH; win: the part of that to keep
// (null = all). data: Float32Array (v/255 - m)/s when norm is given, else Uint8Array; HWC RGB.
napi_value Decode(napi_env env, napi_callback_info info) {
  Args a(env, info);
  if (a.n != 8) return fail(env, "decode: expected 8 arguments");
  void* src = nullptr;
  size_t srcLen = 0;
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, a.v[0], &type, &srcLen, &src, nullptr, nullptr) != napi_ok || type != napi_uint8_array)
    return fail(env, "decode: jpeg must be a Uint8Array");
  double boxv[4], winv[4], normv[6];
  const bool hasBox = !a.isNull(1), hasWin = !a.isNull(4), hasNorm = !a.isNull(7);
  if ((hasBox && !a.nums(1, boxv, 4)) || (hasWin && !a.nums(4, winv, 4)) || (hasNorm && !a.nums(7, normv, 6)))
    return fail(env, "decode: box/win need 4 numbers, norm 6");
  const int outW = int(a.num(2)), outH = int(a.num(3));
  bool flip = false, shrink = false;
  napi_get_value_bool(env, a.v[5], &flip);
  napi_get_value_bool(env, a.v[6], &shrink);
  if (outW < 1 || outH < 1) return fail(env, "decode: bad output size");

  jpeg_decompress_struct c;
  Err err;
  c.err = jpeg_std_error(&err.mgr);
  err.mgr.error_exit = onError;
  err.mgr.emit_message = onMessage;
  // Everything with a destructor lives before setjmp: a longjmp out of libjpeg skips none.
  std::vector<uint8_t> rows;
  Coeffs kx, ky;
  if (setjmp(err.jump)) {
    jpeg_destroy_decompress(&c);
    return fail(env, "libjpeg: " + err.message);
  }
  jpeg_create_decompress(&c);
  jpeg_mem_src(&c, static_cast<unsigned char*>(src), srcLen);
  jpeg_read_header(&c, TRUE);
  if (c.jpeg_color_space != JCS_YCbCr && c.jpeg_color_space != JCS_GRAYSCALE && c.jpeg_color_space != JCS_RGB) {
    jpeg_destroy_decompress(&c);
    return fail(env, "unsupported JPEG colour space");
  }
  const int W = int(c.image_width), H = int(c.image_height);
  Box box = hasBox ? Box{boxv[0], boxv[1], boxv[2], boxv[3]} : Box{0, 0, double(W), double(H)};
  if (box.left < 0 || box.top < 0 || box.width < 1 || box.height < 1 || box.left + box.width > W || box.top + box.height > H) {
    jpeg_destroy_decompress(&c);
    return fail(env, "crop box outside the image (the file changed since it was indexed?)");
  }
  Box win = hasWin ? Box{winv[0], winv[1], winv[2], winv[3]} : Box{0, 0, double(outW), double(outH)};
  if (win.left < 0 || win.top < 0 || win.left + win.width > outW || win.top + win.height > outH || win.width < 1 || win.height < 1) {
    jpeg_destroy_decompress(&c);
    return fail(env, "decode: window outside the resized image");
  }
  // Shrink-on-load by the largest power of two the crop still covers the output with: DCT
  // scaling averages blocks, so the remaining (< 2x) resampling sees an already smooth image.
  int d = 1;
  if (shrink)
    while (d < 8 && box.width / (2 * d) >= outW && box.height / (2 * d) >= outH) d *= 2;
  c.scale_num = 1;
  c.scale_denom = d;
  c.out_color_space = JCS_RGB;
  jpeg_start_decompress(&c);
  const int SW = int(c.output_width), SH = int(c.output_height);
  // The crop in the scaled image, and the whole pixels it touches: resampling never reads outside.
  const double bx = box.left / d, by = box.top / d, bw = box.width / d, bh = box.height / d;
  const int rx0 = int(std::floor(bx)), ry0 = int(std::floor(by));
  const int rx1 = std::min(SW, int(std::ceil(bx + bw))), ry1 = std::min(SH, int(std::ceil(by + bh)));
  const int ow = int(win.width), oh = int(win.height), ox = int(win.left), oy = int(win.top);
  kx = coeffs(bx - rx0, bx - rx0 + bw, rx1 - rx0, outW);
  ky = coeffs(by - ry0, by - ry0 + bh, ry1 - ry0, outH);
  // Rows of the crop the window's outputs read.
  int needTop = ry1 - ry0, needBottom = 0;
  for (int i = oy; i < oy + oh; i++) {
    needTop = std::min(needTop, ky.start[i]);
    needBottom = std::max(needBottom, ky.start[i] + ky.count[i]);
  }
  // libjpeg-turbo widens the crop to iMCU boundaries on the left; on the right the chroma
  // upsampling would treat the crop's edge as the image's, so read up to one iMCU (<= 32 px) more.
  JDIMENSION cx = JDIMENSION(rx0), cw = JDIMENSION(std::min(SW, rx1 + 32) - rx0);
  jpeg_crop_scanline(&c, &cx, &cw);
  const int shiftX = rx0 - int(cx);
  // A scanline's size as libjpeg reports it after the crop (not computed from cw: it may widen).
  const int rowBytes = int(c.output_width) * c.output_components;
  if (c.output_components != 3 || int(c.output_width) < int(cw)) {
    jpeg_destroy_decompress(&c);
    return fail(env, "libjpeg: unexpected scanline layout after the crop");
  }
  const int firstRow = ry0 + needTop, nRows = needBottom - needTop;
  rows.resize(size_t(std::max(nRows, 1)) * rowBytes);
  if (firstRow > 0) jpeg_skip_scanlines(&c, JDIMENSION(firstRow));
  int got = 0;
  for (JSAMPROW p = rows.data(); got < nRows; got++, p += rowBytes)
    if (jpeg_read_scanlines(&c, &p, 1) != 1) break;
  jpeg_abort_decompress(&c);  // the rows below the crop are never decoded
  jpeg_destroy_decompress(&c);
  if (got != nRows) return fail(env, "libjpeg: short read");

  // Horizontal pass for the rows read, window columns only; then the vertical pass.
  std::vector<float> tmp(size_t(nRows) * ow * 3);
  for (int r = 0; r < nRows; r++) {
    const uint8_t* in = rows.data() + size_t(r) * rowBytes;
    float* out = tmp.data() + size_t(r) * ow * 3;
    for (int j = 0; j < ow; j++) {
      const int i = ox + j;
      const float* w = &kx.w[size_t(i) * kx.support];
      const uint8_t* p = in + size_t(kx.start[i] + shiftX) * 3;
      float s0 = 0, s1 = 0, s2 = 0;
      for (int t = 0; t < kx.count[i]; t++, p += 3) s0 += w[t] * p[0], s1 += w[t] * p[1], s2 += w[t] * p[2];
      out[j * 3] = s0, out[j * 3 + 1] = s1, out[j * 3 + 2] = s2;
    }
  }
  const size_t n = size_t(ow) * oh * 3;
  napi_value buffer, result, outArr;
  void* outData = nullptr;
  if (napi_create_arraybuffer(env, n * (hasNorm ? 4 : 1), &outData, &buffer) != napi_ok) return fail(env, "decode: out of memory");
  float lut[3][2];
  for (int ch = 0; ch < 3 && hasNorm; ch++) lut[ch][0] = float(1 / (255.0 * normv[3 + ch])), lut[ch][1] = float(-normv[ch] / normv[3 + ch]);
  std::vector<float> line(size_t(ow) * 3);
  for (int r = 0; r < oh; r++) {
    const int i = oy + r;
    const float* w = &ky.w[size_t(i) * ky.support];
    std::fill(line.begin(), line.end(), 0.f);
    for (int t = 0; t < ky.count[i]; t++) {
      const float* in = tmp.data() + size_t(ky.start[i] + t - needTop) * ow * 3;
      for (int k = 0; k < ow * 3; k++) line[k] += w[t] * in[k];
    }
    for (int j = 0; j < ow; j++) {
      const int from = flip ? ow - 1 - j : j;
      for (int ch = 0; ch < 3; ch++) {
        // Rounded to a byte as every 8-bit image pipeline (and PIL) does, then normalized.
        const float v = std::min(255.f, std::max(0.f, std::nearbyint(line[from * 3 + ch])));
        const size_t at = (size_t(r) * ow + j) * 3 + ch;
        if (hasNorm) static_cast<float*>(outData)[at] = v * lut[ch][0] + lut[ch][1];
        else static_cast<uint8_t*>(outData)[at] = uint8_t(v);
      }
    }
  }
  if (napi_create_typedarray(env, hasNorm ? napi_float32_array : napi_uint8_array, n, buffer, 0, &outArr) != napi_ok ||
      napi_create_object(env, &result) != napi_ok)
    return fail(env, "decode: cannot create the result");
  napi_value vw, vh;
  napi_create_int32(env, ow, &vw);
  napi_create_int32(env, oh, &vh);
  napi_set_named_property(env, result, "data", outArr);
  napi_set_named_property(env, result, "width", vw);
  napi_set_named_property(env, result, "height", vh);
  return result;
}

napi_value Version(napi_env env, napi_callback_info) {
  std::string s = "libjpeg API " + std::to_string(JPEG_LIB_VERSION);
#ifdef LIBJPEG_TURBO_VERSION
  s += " (libjpeg-turbo)";
#endif
  napi_value out;
  napi_create_string_utf8(env, s.c_str(), s.size(), &out);
  return out;
}

}  // namespace

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"decode", nullptr, Decode, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"version", nullptr, Version, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, 2, props);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
