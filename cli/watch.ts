/**
 * `l2fed watch`: follows federation changes (WatchEvents) until Ctrl-C. Prints the
 * resume token on exit so `--resume TOKEN` continues where it stopped.
 */
import { Metadata, status, type ServiceError } from '@grpc/grpc-js';
import { Option, type Command } from 'commander';
import { stringify as toYaml } from 'yaml';
import { withApi } from './connection.js';
import { outputOption, type Format } from './output.js';
import { paint } from './ansi.js';
import {
  Event,
  EventKind,
  EventOperation,
  eventKindFromJSON,
  type WatchEventsResponse,
} from '../proto/gen/l2fed/admin/v1/events.js';

const KIND_NAMES = [
  'cluster',
  'exports',
  'peerings',
  'network',
  'peer-map',
  'health',
  'audit',
] as const;

function parseKinds(list: string | undefined): EventKind[] {
  if (!list) return [];
  return list.split(',').map((k) => {
    const kind = eventKindFromJSON(`EVENT_KIND_${k.trim().toUpperCase().replaceAll('-', '_')}`);
    if (kind === EventKind.UNRECOGNIZED || kind === EventKind.EVENT_KIND_UNSPECIFIED)
      throw new Error(`unknown event kind "${k}"; use some of ${KIND_NAMES.join(', ')}`);
    return kind;
  });
}

export function registerWatch(program: Command): void {
  program
    .command('watch')
    .description('stream federation changes until Ctrl-C (or --for seconds)')
    .addOption(new Option('--kinds <list>', `comma-separated: ${KIND_NAMES.join(', ')}`))
    .option('--resume <token>', 'continue after the event with this resume token')
    .option('--initial', 'first print the current state of every key')
    .option('--for <seconds>', 'stop after this long (default: until Ctrl-C)')
    .addOption(outputOption())
    .addHelpText(
      'after',
      '\nExamples:\n  l2fed watch\n  l2fed watch --kinds cluster,peer-map -o json\n  l2fed watch --resume eyJ... --for 60',
    )
    .action(
      async (
        o: { kinds?: string; resume?: string; initial?: boolean; for?: string; output: Format },
        cmd: Command,
      ) => {
        const kinds = parseKinds(o.kinds);
        const forMs = o.for ? Number(o.for) * 1000 : undefined;
        if (forMs !== undefined && !(forMs > 0))
          throw new Error('--for must be a positive number of seconds');
        await withApi(cmd, (api) => {
          const call = api.events.watchEvents(
            { kinds, resumeToken: o.resume ?? '', includeInitial: o.initial ?? false },
            new Metadata(),
            forMs ? { deadline: new Date(Date.now() + forMs) } : {},
          );
          let last = '';
          return new Promise<void>((resolve, reject) => {
            const stop = () => call.cancel();
            process.once('SIGINT', stop);
            call.on('data', (m: WatchEventsResponse) => {
              if (m.initialDone && o.output === 'table')
                console.log(paint('--- current state above, changes below ---', 'gray'));
              const e = m.event;
              if (!e) return;
              last = e.resumeToken;
              if (o.output === 'json') console.log(JSON.stringify(Event.toJSON(e)));
              else if (o.output === 'yaml') process.stdout.write(`---\n${toYaml(Event.toJSON(e))}`);
              else
                console.log(
                  `${e.time?.toISOString() ?? ''}  ${paint(e.summary, e.operation === EventOperation.EVENT_OPERATION_DELETE ? 'yellow' : 'blue')}`,
                );
            });
            call.on('error', (err: ServiceError) => {
              process.removeListener('SIGINT', stop);
              if (last) console.error(`resume with: l2fed watch --resume ${last}`);
              if (err.code === status.CANCELLED || err.code === status.DEADLINE_EXCEEDED) resolve();
              else reject(err);
            });
            call.on('end', () => resolve());
          });
        });
      },
    );
}
