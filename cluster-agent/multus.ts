/**
 * The Multus network-selection annotation (`k8s.v1.cni.cncf.io/networks`), in both forms
 * Multus accepts: a JSON list of selection objects, or the short comma-separated form
 * `[namespace/]name[@interface]`. The lab turns each selection into one pod interface.
 */
import { z } from 'zod';
import { dnsLabel, ifName } from './schema-common.js';

/** One network a pod joins, after parsing either form. */
export interface NetworkSelection {
  /** NetworkAttachmentDefinition name; in l2fed, the federated network's name. */
  readonly name: string;
  readonly namespace?: string;
  /** Pod-side interface name; the lab picks net1, net2, … when absent. */
  readonly interface?: string;
  /** Addresses with prefix length (CIDR notation), IPv4 or IPv6. */
  readonly ips: readonly string[];
  readonly mac?: string;
}

/**
 * The subset of the Multus JSON selection the lab implements. Unknown keys are rejected so
 * a typo (`"ip"` for `"ips"`) fails loudly instead of yielding an interface with no address.
 */
const selectionObject = z.strictObject({
  name: dnsLabel,
  namespace: dnsLabel.optional(),
  interface: ifName.optional(),
  ips: z
    .array(
      z.union([z.cidrv4(), z.cidrv6()], {
        error: 'must be an address with prefix length (CIDR), e.g. 10.10.0.11/24',
      }),
    )
    .optional(),
  mac: z
    .string()
    .regex(/^([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}$/, {
      error: 'must be a MAC like 02:00:00:00:00:01',
    })
    .refine((m) => (parseInt(m.slice(0, 2), 16) & 1) === 0, {
      error: 'must be a unicast MAC (the first octet must be even)',
    })
    .optional(),
});

const selectionList = z.array(selectionObject).superRefine((list, ctx) => {
  const ifaces = new Map<string, number>();
  list.forEach((sel, i) => {
    if (sel.interface === undefined) return;
    const first = ifaces.get(sel.interface);
    if (first !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: [i, 'interface'],
        message: `interface ${sel.interface} is already used by entry ${first}`,
      });
    }
    ifaces.set(sel.interface, i);
  });
});

/** Where a problem in the annotation is and what is wrong, relative to the annotation value. */
export interface SelectionIssue {
  readonly path: readonly PropertyKey[];
  readonly message: string;
}

export type ParsedSelections =
  | { readonly ok: true; readonly selections: readonly NetworkSelection[] }
  | { readonly ok: false; readonly issues: readonly SelectionIssue[] };

/** Parses the annotation value. Pure; never throws. */
export function parseNetworkSelections(value: string): ParsedSelections {
  const text = value.trim();
  if (text === '') return { ok: false, issues: [{ path: [], message: 'must not be empty' }] };
  if (text.startsWith('[') || text.startsWith('{')) return parseJsonForm(text);
  return parseShortForm(text);
}

function parseJsonForm(text: string): ParsedSelections {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    return { ok: false, issues: [{ path: [], message: `is not valid JSON (${why})` }] };
  }
  if (!Array.isArray(raw)) {
    return { ok: false, issues: [{ path: [], message: 'must be a JSON list of objects' }] };
  }
  const result = selectionList.safeParse(raw);
  if (!result.success) {
    return {
      ok: false,
      issues: result.error.issues.flatMap((i) =>
        i.code === 'unrecognized_keys'
          ? i.keys.map((k) => ({
              path: [...i.path, k],
              message: `unknown field ${JSON.stringify(k)} (supported: name, namespace, interface, ips, mac)`,
            }))
          : [{ path: i.path, message: i.message }],
      ),
    };
  }
  return {
    ok: true,
    selections: result.data.map((s) => ({ ...s, ips: s.ips ?? [] })),
  };
}

// Short form: "cdn", "cdn@eth1", "lab/cdn@eth1", comma-separated.
function parseShortForm(text: string): ParsedSelections {
  const raw = text.split(',').map((part) => {
    const entry = part.trim();
    const at = entry.indexOf('@');
    const ref = at < 0 ? entry : entry.slice(0, at);
    const iface = at < 0 ? undefined : entry.slice(at + 1);
    const slash = ref.indexOf('/');
    const namespace = slash < 0 ? undefined : ref.slice(0, slash);
    const name = slash < 0 ? ref : ref.slice(slash + 1);
    return {
      name,
      ...(namespace === undefined ? {} : { namespace }),
      ...(iface === undefined ? {} : { interface: iface }),
    };
  });
  return parseJsonForm(JSON.stringify(raw));
}
