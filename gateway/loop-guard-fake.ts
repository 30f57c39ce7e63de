/**
 * `nft` for the loop guard's table (`inet l2fed_l2`, gateway/loop-guard.ts) over a
 * FakeRunner: `nft -f -` runs the flat command scripts the guard writes, as one
 * transaction with nft's refusals (a missing chain, set or element; a chain still
 * holding rules or named by a map entry), and `nft -j list table` answers in nft's JSON
 * with the counters a test sets (in the counter sets, as the packet path makes them). It
 * records the bytes of every script, so tests can show what a change costs, and keeps
 * the ruleset generation, which every committed script bumps.
 */
import type { FakeRunner } from '../lib/runner-fake.js';
import { COUNTER_SETS, L2_GUARD_FAMILY, L2_GUARD_TABLE } from './loop-guard.js';

interface FakeRule {
  readonly body: string;
  readonly comment: string | undefined;
}

interface FakeTable {
  /** Set name → "address vni" keys. */
  sets: Map<string, Set<string>>;
  /** Counter set name → "address vni" → packets. */
  counts: Map<string, Map<string, number>>;
  /** Map name → "address vni" → goto target. */
  maps: Map<string, Map<string, string>>;
  chains: Map<string, FakeRule[]>;
}

const T = `${L2_GUARD_FAMILY} ${L2_GUARD_TABLE}`;
const esc = (s: string) => s.replaceAll('.', '\\.');

class NftRefusal extends Error {}

function clone(t: FakeTable): FakeTable {
  return {
    sets: new Map([...t.sets].map(([k, v]) => [k, new Set(v)])),
    counts: new Map([...t.counts].map(([k, v]) => [k, new Map(v)])),
    maps: new Map([...t.maps].map(([k, v]) => [k, new Map(v)])),
    chains: new Map([...t.chains].map(([k, v]) => [k, v.map((r) => ({ ...r }))])),
  };
}

/** "198.19.0.3 . 1000" → "198.19.0.3 1000". */
const keyOf = (elem: string) => elem.trim().replace(' . ', ' ');

export class FakeL2GuardNft {
  table: FakeTable | undefined;
  /** Every `nft -f` script, in order (refused ones too). */
  readonly scripts: string[] = [];
  /** Bytes of each script, in order. */
  readonly bytes: number[] = [];
  /** Scripts that made the table afresh. */
  replaced = 0;
  /** The ruleset generation: one more per committed script (NFT_MSG_GETGEN). */
  generation = 1;
  /** false: counter set elements are listed without counters (a kernel keeping none). */
  keepsCounters = true;

  constructor(
    readonly runner: FakeRunner,
    readonly nft = '/usr/sbin/nft',
  ) {
    runner.on(
      (a) => a[0] === nft && a[1] === '-j',
      () => this.listing(),
    );
    runner.on(
      (a) => a.join(' ') === `${nft} -f -`,
      (_a, o) => {
        const input = String(o.input);
        this.scripts.push(input);
        this.bytes.push(Buffer.byteLength(input));
        try {
          this.table = this.run(input);
          this.generation++;
          return {};
        } catch (err) {
          if (!(err instanceof NftRefusal)) throw err;
          return { exitCode: 1, stderr: `Error: ${err.message}` };
        }
      },
    );
  }

  /** What `nft -j list table inet l2fed_l2` says. */
  listing() {
    return this.table === undefined
      ? { exitCode: 1, stdout: '', stderr: 'Error: No such file or directory' }
      : { exitCode: 0, stdout: this.json(this.table), stderr: '' };
  }

  /** What `list set` of each of `sets` says, one JSON document per line (the helper's way). */
  listSets(sets: readonly string[]) {
    const t = this.table;
    const missing = sets.find((n) => !t?.sets.has(n));
    if (!t || missing) {
      return { exitCode: 1, stdout: '', stderr: `Error: No such file or directory (${missing})` };
    }
    const docs = sets.map((n) => JSON.stringify({ nftables: [this.setObject(t, n)] }));
    return { exitCode: 0, stdout: docs.join('\n') + '\n', stderr: '' };
  }

  /** The blocked set's keys ("address vni"), sorted. */
  get blocked(): string[] {
    return [...(this.table?.sets.get('blocked') ?? [])].sort();
  }

  /** Path keys with a chain pair, sorted. */
  get paths(): string[] {
    return [...(this.table?.maps.get('paths_in')?.keys() ?? [])].sort();
  }

  /** The rule of `kind` ("repeat", "bum-out", "blocked-in" …) of the path `key`. */
  rule(kind: string, key: string): FakeRule {
    const [address, vni] = key.split(' ');
    const chain = `${kind.endsWith('-in') ? 'in' : 'out'}-${address}-${vni}`;
    const r = this.table?.chains
      .get(chain)
      ?.find((x) => x.comment?.startsWith(`${kind} `) && x.comment.endsWith(` ${key}`));
    if (!r) throw new Error(`fake nft: no ${kind} rule for ${key}`);
    return r;
  }

  /**
   * Counts `n` packets dropped by a path rule, as traffic would: under the path's element
   * of the counter set the rule updates, which the first packet makes.
   */
  count(kind: string, key: string, n = 1): void {
    // The rule's sink chain (goto) holds the update of its counter set.
    const sink = /goto (\S+)$/.exec(this.rule(kind, key).body)?.[1];
    const update = this.table?.chains.get(sink ?? '')?.find((r) => r.body.startsWith('update @'));
    const set = update && /^update @(\S+) /.exec(update.body)?.[1];
    const counts = set === undefined ? undefined : this.table?.counts.get(set);
    if (!counts) throw new Error(`fake nft: the ${kind} rule of ${key} counts in no counter set`);
    this.table!.sets.get(set!)!.add(key);
    counts.set(key, (counts.get(key) ?? 0) + n);
  }

  /** Deletes a path rule as `nft delete rule` by hand would: a transaction of its own. */
  deleteRuleByHand(kind: string, key: string): void {
    const [address, vni] = key.split(' ');
    const chain = this.table!.chains.get(
      `${kind.endsWith('-in') ? 'in' : 'out'}-${address}-${vni}`,
    )!;
    chain.splice(chain.indexOf(this.rule(kind, key)), 1);
    this.generation++;
  }

  /** Packets counted under a path for a rule kind (0 without an element). */
  counted(kind: keyof typeof COUNTER_SETS, key: string): number {
    return this.table?.counts.get(COUNTER_SETS[kind])?.get(key) ?? 0;
  }

  /** Runs a script on a copy: all of it or nothing, as nft does. */
  private run(input: string): FakeTable {
    let t = this.table && clone(this.table);
    let fresh = false;
    const need = () => {
      if (!t) throw new NftRefusal('No such file or directory (table)');
      return t;
    };
    for (const line of input.split('\n').filter(Boolean)) {
      if (line === `table ${T} {}` || line === `add table ${T}`) {
        if (!t && line.startsWith('add')) fresh = true;
        t ??= { sets: new Map(), counts: new Map(), maps: new Map(), chains: new Map() };
        continue;
      }
      if (line === `delete table ${T}`) {
        need();
        t = undefined;
        continue;
      }
      let m = new RegExp(`^add (set|map) ${esc(T)} (\\S+) \\{`).exec(line);
      if (m) {
        const tt = need();
        if (m[1] === 'set') tt.sets.set(m[2]!, tt.sets.get(m[2]!) ?? new Set<string>());
        else tt.maps.set(m[2]!, tt.maps.get(m[2]!) ?? new Map<string, string>());
        if (/ counter; \}$/.test(line) && !tt.counts.has(m[2]!)) tt.counts.set(m[2]!, new Map());
        continue;
      }
      m = new RegExp(`^(add|flush|delete) chain ${esc(T)} (\\S+)( \\{.*\\})?$`).exec(line);
      if (m) {
        const tt = need();
        const [, verb, name] = m as unknown as [string, string, string];
        const rules = tt.chains.get(name);
        if (verb === 'add') {
          if (!rules) tt.chains.set(name, []);
        } else if (!rules) {
          throw new NftRefusal(`No such file or directory (chain ${name})`);
        } else if (verb === 'flush') {
          rules.length = 0;
        } else {
          const used = [...tt.maps.values()].some((mm) => [...mm.values()].includes(name));
          if (rules.length || used) throw new NftRefusal(`Device or resource busy (${name})`);
          tt.chains.delete(name);
        }
        continue;
      }
      m = new RegExp(`^add rule ${esc(T)} (\\S+) (.*?)(?: comment "([^"]*)")?$`).exec(line);
      if (m) {
        const tt = need();
        const rules = tt.chains.get(m[1]!);
        if (!rules) throw new NftRefusal(`No such file or directory (chain ${m[1]})`);
        for (const [, ref] of m[2]!.matchAll(/@([a-z_]+)(?=\s|$)/g)) {
          if (!tt.sets.has(ref!) && !tt.maps.has(ref!)) {
            throw new NftRefusal(`No such file or directory (set ${ref})`);
          }
        }
        const target = /\bgoto (\S+)/.exec(m[2]!)?.[1];
        if (target && !tt.chains.has(target)) {
          throw new NftRefusal(`No such file or directory (chain ${target})`);
        }
        rules.push({ body: m[2]!, comment: m[3] });
        continue;
      }
      m = new RegExp(`^(add|delete) element ${esc(T)} (\\S+) \\{ (.*) \\}$`).exec(line);
      if (m) {
        const tt = need();
        const [, verb, name, list] = m as unknown as [string, string, string, string];
        const set = tt.sets.get(name);
        const map = tt.maps.get(name);
        if (!set && !map) throw new NftRefusal(`No such file or directory (set ${name})`);
        for (const item of list.split(', ')) {
          const [elem, verdict] = item.split(' : ');
          const k = keyOf(elem!);
          if (verb === 'delete') {
            if (!(set ?? map)!.has(k)) throw new NftRefusal(`No such file or directory (${k})`);
            (set ?? map)!.delete(k);
            tt.counts.get(name)?.delete(k);
          } else if (set) {
            set.add(k);
          } else {
            const target = /^goto (\S+)$/.exec(verdict ?? '')?.[1];
            if (!target || !tt.chains.has(target)) {
              throw new NftRefusal(`No such file or directory (chain ${target})`);
            }
            const held = map!.get(k);
            if (held !== undefined && held !== target) throw new NftRefusal(`File exists (${k})`);
            map!.set(k, target);
          }
        }
        continue;
      }
      throw new Error(`fake nft: unexpected line: ${line}`);
    }
    if (fresh) this.replaced++;
    return t!;
  }

  private json(t: FakeTable): string {
    const pair = (k: string) => {
      const [a, v] = k.split(' ');
      return { concat: [a, Number(v)] };
    };
    const objects: unknown[] = [
      { metainfo: { version: '1.0.6', json_schema_version: 1 } },
      { table: { family: L2_GUARD_FAMILY, name: L2_GUARD_TABLE } },
    ];
    for (const name of t.sets.keys()) objects.push(this.setObject(t, name));
    for (const [name, entries] of t.maps) {
      const elem = [...entries].map(([k, target]) => [pair(k), { goto: { target } }]);
      objects.push({ map: { name, map: 'verdict', elem } });
    }
    for (const name of t.chains.keys()) objects.push({ chain: { name } });
    for (const [chain, rules] of t.chains) {
      for (const r of rules) {
        objects.push({ rule: { chain, ...(r.comment ? { comment: r.comment } : {}), expr: [] } });
      }
    }
    return JSON.stringify({ nftables: objects });
  }

  /** A set as nft -j lists it; a counter set's elements carry their counters. */
  private setObject(t: FakeTable, name: string) {
    const pair = (k: string) => {
      const [a, v] = k.split(' ');
      return { concat: [a, Number(v)] };
    };
    const counts = t.counts.get(name);
    const elem = [...t.sets.get(name)!].map((k) =>
      !counts
        ? pair(k)
        : this.keepsCounters
          ? { elem: { val: pair(k), counter: { packets: counts.get(k) ?? 0, bytes: 0 } } }
          : { elem: { val: pair(k) } },
    );
    return { set: { name, elem } };
  }
}
