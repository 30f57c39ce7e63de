/**
 * Shared by the fake backends: one ordered log of mutating operations, and one-shot
 * error injection, so a unit test can assert "this apply changed nothing" across all
 * backends at once.
 */
export class FakeLog {
  readonly mutations: string[] = [];
  private readonly failures = new Map<string, Error>();

  /** The next mutation whose text starts with `prefix` throws `err` (once). */
  failNext(prefix: string, err: Error = new Error(`injected failure: ${prefix}`)): void {
    this.failures.set(prefix, err);
  }

  /** Records a mutation, or throws an injected failure instead. */
  record(text: string): void {
    for (const [prefix, err] of this.failures) {
      if (text.startsWith(prefix)) {
        this.failures.delete(prefix);
        throw err;
      }
    }
    this.mutations.push(text);
  }

  clear(): void {
    this.mutations.length = 0;
  }
}
