// Keep the next batches loading while the current one trains: file-backed datasets decode in
// libuv's thread pool, so their work overlaps the (synchronous) training step.

/** Start up to `depth` jobs ahead and yield their results in order. */
export async function* prefetch<T>(jobs: Iterable<() => Promise<T>>, depth: number): AsyncGenerator<T> {
  const it = jobs[Symbol.iterator]();
  const queue: Promise<T>[] = [];
  const fill = () => {
    while (queue.length < Math.max(1, depth)) {
      const next = it.next();
      if (next.done) return;
      const p = next.value();
      p.catch(() => {}); // reported when awaited, in order; never as an unhandled rejection
      queue.push(p);
    }
  };
  fill();
  while (queue.length) {
    const result = await queue.shift()!;
    fill();
    // In-memory loads resolve as microtasks; yield to the event loop so progress bars redraw,
    // signals are seen and I/O callbacks run between batches.
    await new Promise((r) => setImmediate(r));
    yield result;
  }
}
