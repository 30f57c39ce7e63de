/**
 * Import rules between l2fed's folders (run by `npm run deps`, part of `npm test`).
 *
 * The allowed direction, top to bottom; a folder may import its own files and any
 * folder below it, never one above or beside it:
 *
 *   cli → lab → cluster-agent → {broker, gateway} → {lib, proto}
 *
 * Tests and harnesses (`*.test.ts`, `test/`, `scripts/`, `bench/`) may import anything, but
 * production code never imports them. No import cycles anywhere.
 */
const layer = (from, allowed) => ({
  name: `${from}-imports-upward`,
  comment: `${from}/ may import only ${allowed.join(', ') || 'nothing of ours'} (see docs/development.md)`,
  severity: 'error',
  from: { path: `^${from}/`, pathNot: '\\.test\\.ts$' },
  to: {
    path: '^(cli|lab|cluster-agent|broker|gateway|lib|proto)/',
    pathNot: `^(${[from, ...allowed].join('|')})/`,
  },
});

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      comment: 'An import cycle: break it by moving the shared piece down (docs/development.md)',
      severity: 'error',
      from: {},
      to: { circular: true },
    },
    layer('cli', ['lab', 'cluster-agent', 'broker', 'gateway', 'lib', 'proto']),
    layer('lab', ['cluster-agent', 'broker', 'gateway', 'lib', 'proto']),
    layer('cluster-agent', ['broker', 'gateway', 'lib', 'proto']),
    layer('broker', ['lib', 'proto']),
    layer('gateway', ['lib', 'proto']),
    layer('lib', ['proto']),
    layer('proto', []),
    {
      name: 'production-imports-tests',
      comment: 'Production code must not import test harnesses or fixtures',
      severity: 'error',
      from: {
        path: '^(cli|lab|cluster-agent|broker|gateway|lib|proto)/',
        pathNot: ['\\.test\\.ts$', '-fake\\.ts$'],
      },
      to: { path: ['^(test|bench)/', '-fake\\.ts$'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(node_modules|dist)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
