/** Errors shared by every package. Each sets `name`, keeps `cause` and carries typed fields. */

/** A command run through the runner failed, timed out or could not start. */
export class CommandError extends Error {
  override name = 'CommandError';
  constructor(
    readonly argv: readonly string[],
    readonly exitCode: number | undefined,
    readonly stderr: string,
    readonly timedOut: boolean,
    options?: { cause?: unknown; netns?: string },
  ) {
    const where = options?.netns ? ` (in netns ${options.netns})` : '';
    const why = timedOut
      ? 'timed out'
      : exitCode === undefined
        ? 'could not start'
        : `exited with ${exitCode}`;
    const detail = stderr.trim() ? `: ${stderr.trim().split('\n').slice(-3).join(' | ')}` : '';
    super(`command ${argv.join(' ')}${where} ${why}${detail}`, { cause: options?.cause });
    this.netns = options?.netns;
  }
  readonly netns: string | undefined;
}

/** A required host tool (nats-server, wg, ovs-vsctl, …) is not installed. */
export class MissingToolError extends Error {
  override name = 'MissingToolError';
  constructor(
    readonly tool: string,
    readonly debianPackage: string,
  ) {
    super(
      `${tool} is not installed; run "npm run setup" (installs Debian package ${debianPackage})`,
    );
  }
}

/** A supervised process did not become ready in time or exited early. */
export class ProcessStartError extends Error {
  override name = 'ProcessStartError';
  constructor(
    readonly command: string,
    message: string,
    readonly output: string,
    options?: { cause?: unknown },
  ) {
    super(
      `${command}: ${message}${output.trim() ? `\n--- output ---\n${output.trim()}` : ''}`,
      options,
    );
  }
}

/** Renders any thrown value as one line for logs and CLI output. */
export function describeError(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
