// Makes data/fashion-mnist-mini from the full Fashion-MNIST: the first 1,000 training images of each
// class and the first 200 test images of each class, in original file order, plus a README with
// provenance and sha256 sums. Deterministic: rerunning gives byte-identical files.
//   npx tsx scripts/make-fashion-mnist-mini.ts [SRC_DIR] [OUT_DIR]
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { PACKAGE_ROOT, MINI_DIR, subset, type ImageSet } from '../src/data/dataset.js';
import { FASHION_MNIST_CLASSES, FASHION_MNIST_FILES as F, locateFashionMnist, readFashionMnistDir } from '../src/data/fashion-mnist.js';
import { writeIdx } from '../src/data/idx.js';

const PER_CLASS = { train: 1000, test: 200 };

function firstPerClass(set: ImageSet, perClass: number): ImageSet {
  const taken = new Array(FASHION_MNIST_CLASSES.length).fill(0);
  const chosen: number[] = [];
  for (let i = 0; i < set.n; i++) if (taken[set.labels[i]]++ < perClass) chosen.push(i);
  if (taken.some((t) => t < perClass)) throw new Error(`a class has fewer than ${perClass} images: ${taken}`);
  return subset(set, chosen);
}

const src = locateFashionMnist(process.argv[2] ?? null);
const out = resolve(process.argv[3] ?? join(PACKAGE_ROOT, MINI_DIR));
const full = readFashionMnistDir(src);
const splits = [
  { set: firstPerClass(full.train, PER_CLASS.train), images: F.trainImages, labels: F.trainLabels },
  { set: firstPerClass(full.test, PER_CLASS.test), images: F.testImages, labels: F.testLabels },
];
const sums: string[] = [];
for (const { set, images, labels } of splits) {
  for (const [base, dims, data] of [
    [images, [set.n, set.height, set.width], set.images],
    [labels, [set.n], Uint8Array.from(set.labels)],
  ] as const) {
    const name = `${base}.gz`;
    writeIdx(join(out, name), [...dims], data, { gzip: true });
    sums.push(`${createHash('sha256').update(readFileSync(join(out, name))).digest('hex')}  ${name}`);
  }
}

const readme = `# Fashion-MNIST mini subset

A small, class-balanced subset of Fashion-MNIST shipped with bnlab so that it trains and tests
without downloading anything (\`data.name: fashion-mnist-mini\`, the default).

| split | images | per class | taken from |
| --- | --- | --- | --- |
| train | ${splits[0].set.n} | ${PER_CLASS.train} | the Fashion-MNIST training set (60,000) |
| test (bnlab's val) | ${splits[1].set.n} | ${PER_CLASS.test} | the Fashion-MNIST test set (10,000) |

Images are 28x28 grayscale, unsigned-byte IDX files, gzipped, with the original file names.
Classes: ${FASHION_MNIST_CLASSES.map((c, i) => `${i} ${c}`).join(', ')}.

## Source and licence

- Source: Zalando Research, Fashion-MNIST, https://github.com/zalandoresearch/fashion-mnist
  (read here from Debian's \`dataset-fashion-mnist\` package, \`/usr/share/datasets/fashion-mnist\`).
- Licence: MIT. Copyright (c) 2017 Zalando SE.

  Permission is hereby granted, free of charge, to any person obtaining a copy of this software and
  associated documentation files (the "Software"), to deal in the Software without restriction,
  including without limitation the rights to use, copy, modify, merge, publish, distribute,
  sublicense, and/or sell copies of the Software, and to permit persons to whom the Software is
  furnished to do so, subject to the following conditions: The above copyright notice and this
  permission notice shall be included in all copies or substantial portions of the Software.
  THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING BUT
  NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
  NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
  DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
  OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.

## How the subset was selected

For each split, the first ${PER_CLASS.train} (train) / ${PER_CLASS.test} (test) images of each class in the
original file order, kept in that order. No randomness: the same source files always give the same subset.

Made by \`npx tsx scripts/make-fashion-mnist-mini.ts\` (optionally \`[SRC_DIR] [OUT_DIR]\`), which
rewrites these files and this README byte for byte.

## sha256

Check with \`sha256sum -c\` on the lines below, run in this directory.

\`\`\`
${sums.join('\n')}
\`\`\`
`;
writeFileSync(join(out, 'README.md'), readme);
console.log(`wrote ${relative(process.cwd(), out) || '.'} from ${src}:\n${sums.join('\n')}`);
