/**
 * Runs `fn` over `items`, at most `parallel` at once. On the first failure no new item
 * starts; the ones already running finish, then that failure is thrown (so a caller that
 * cleans up after a failure never races a start still in flight).
 */
export async function pool<T>(
  items: readonly T[],
  parallel: number,
  fn: (x: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  let failed: { err: unknown } | undefined;
  const worker = async () => {
    while (!failed && next < items.length) {
      const x = items[next++]!;
      try {
        await fn(x);
      } catch (err) {
        failed ??= { err };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(parallel, items.length)) }, worker));
  if (failed) throw failed.err;
}
