"""Reference ImageNet-C corruptions for test/corruption-reference.test.ts, written from
Hendrycks & Dietterich's make_imagenet_c.py formulas with PIL and the standard library (colorsys
for skimage's rgb2hsv/hsv2rgb). Reads {width, height, img: [uint8 HWC RGB], cases: [{type,
severity}]} on stdin; writes a JSON list of uint8 arrays (np.uint8: truncated) to stdout."""
import colorsys
import io
import json
import sys

import numpy as np
from PIL import Image

C = {
    "contrast": [0.4, 0.3, 0.2, 0.1, 0.05],
    "jpeg_compression": [25, 18, 15, 10, 7],
    "brightness": [0.1, 0.2, 0.3, 0.4, 0.5],
}


def contrast(x, c):
    x = np.array(x) / 255.0
    means = np.mean(x, axis=(0, 1), keepdims=True)
    return np.clip((x - means) * c + means, 0, 1) * 255


def jpeg_compression(x, c):
    out = io.BytesIO()
    Image.fromarray(x).save(out, "JPEG", quality=c)
    return np.asarray(Image.open(out))


def brightness(x, c):
    x = np.array(x) / 255.0
    out = np.empty_like(x)
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            h, s, v = colorsys.rgb_to_hsv(*x[i, j])
            out[i, j] = colorsys.hsv_to_rgb(h, s, min(1.0, max(0.0, v + c)))
    return np.clip(out, 0, 1) * 255


req = json.load(sys.stdin)
img = np.array(req["img"], dtype=np.uint8).reshape(req["height"], req["width"], 3)
fns = {"contrast": contrast, "jpeg_compression": jpeg_compression, "brightness": brightness}
json.dump([np.uint8(fns[k["type"]](img, C[k["type"]][k["severity"] - 1])).ravel().tolist() for k in req["cases"]], sys.stdout)
