// One start for scripts/stress-startup.sh: initialise the backend the way `bnlab train` does
// (initBackend), run one small conv step on it so the thread pool is used, print one line, exit.
// Run: node --import tsx scripts/stress-startup.child.ts [backend] [threads]
import * as tf from '@tensorflow/tfjs';
import { initBackend, type BackendChoice } from '../src/backend/index.js';

const t0 = Date.now();
const choice = (process.argv[2] ?? 'auto') as BackendChoice;
const threads = Number(process.argv[3] ?? 0);
const b = await initBackend(choice, threads);
const tInit = Date.now() - t0;
const y = tf.tidy(() => tf.conv2d(tf.ones([8, 16, 16, 8]) as tf.Tensor4D, tf.ones([3, 3, 8, 8]) as tf.Tensor4D, 1, 'same').sum());
const v = (await y.data())[0];
process.stdout.write(`ok ${b.name} threads=${b.threads ?? '-'} init_ms=${tInit} sum=${v}\n`);
