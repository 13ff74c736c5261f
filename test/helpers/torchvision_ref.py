"""Reference images for test/native-jpeg.test.ts, made the way the paper's recipe makes them:
PIL decodes, torchvision crops and resizes (bilinear, antialiased). Reads a JSON list of cases
on stdin, writes a JSON list of {width, height, data: base64 HWC RGB uint8} to stdout.
A case: {file, box: [left, top, width, height] | null, size: [width, height], win: box | null,
flip: bool}: crop `box` (null = whole image), resize to `size`, crop `win`, mirror."""
import base64
import json
import sys

import numpy as np
import torchvision.transforms.functional as F
from PIL import Image

out = []
for c in json.load(sys.stdin):
    img = Image.open(c["file"]).convert("RGB")
    left, top, w, h = c["box"] or [0, 0, img.width, img.height]
    img = F.resized_crop(img, top, left, h, w, [c["size"][1], c["size"][0]], interpolation=F.InterpolationMode.BILINEAR)
    if c["win"]:
        l, t, ww, hh = c["win"]
        img = F.crop(img, t, l, hh, ww)
    if c["flip"]:
        img = F.hflip(img)
    a = np.ascontiguousarray(np.asarray(img, dtype=np.uint8))
    out.append({"width": a.shape[1], "height": a.shape[0], "data": base64.b64encode(a.tobytes()).decode()})
json.dump(out, sys.stdout)
