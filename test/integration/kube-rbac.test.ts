/**
 * deploy/rbac against a real kube-apiserver with RBAC authorization: a real ServiceAccount
 * token (TokenRequest API) for the cluster-agent is allowed every verb the agent uses and
 * refused a sample of what it must not do, checked with SubjectAccessReview (what the
 * authorizer decides for the account) and with requests made with the token itself.
 */
import { KubeStatusWriter } from '../../cluster-agent/status-writer.js';
import {
  AGENT_NAMESPACE as NS,
  AGENT_SERVICE_ACCOUNT as SA,
  agentControlPlaneTest,
} from '../fixtures/kube-agent-control-plane.js';
import type { KubeControlPlane } from '../fixtures/kube-control-plane.js';

const test = agentControlPlaneTest();

const USER = `system:serviceaccount:${NS}:${SA}`;

interface Attrs {
  verb: string;
  group?: string;
  resource: string;
  subresource?: string;
  namespace?: string;
  name?: string;
}

/** What the agent does (cluster-agent/source-kubernetes.ts, status-writer.ts). */
const NEEDED: Attrs[] = ['federatednetworks', 'clusterpeerings'].flatMap((resource) => [
  ...['get', 'list', 'watch'].map((verb) => ({ verb, group: 'l2fed.io', resource })),
  ...['patch', 'update'].map((verb) => ({
    verb,
    group: 'l2fed.io',
    resource,
    subresource: 'status',
    name: 'cdn',
  })),
]);

/** A sample of what the agent must never be able to do. */
const FORBIDDEN: Attrs[] = [
  { verb: 'get', resource: 'secrets', namespace: NS, name: 'any' },
  { verb: 'list', resource: 'secrets' },
  { verb: 'list', resource: 'pods' },
  { verb: 'create', resource: 'pods', namespace: NS },
  { verb: 'create', resource: 'serviceaccounts', subresource: 'token', namespace: NS, name: SA },
  // Spec writes: only the status subresource is the agent's.
  ...['create', 'update', 'patch', 'delete', 'deletecollection'].flatMap((verb) =>
    ['federatednetworks', 'clusterpeerings'].map((resource) => ({
      verb,
      group: 'l2fed.io',
      resource,
    })),
  ),
  // Other groups.
  { verb: 'list', group: 'apps', resource: 'deployments' },
  { verb: 'list', group: 'k8s.cni.cncf.io', resource: 'network-attachment-definitions' },
  { verb: 'create', group: 'rbac.authorization.k8s.io', resource: 'clusterrolebindings' },
  { verb: 'update', group: 'apiextensions.k8s.io', resource: 'customresourcedefinitions' },
];

const describe = (a: Attrs) =>
  `${a.verb} ${a.resource}${a.subresource ? `/${a.subresource}` : ''}${a.group ? `.${a.group}` : ''}`;

interface Review {
  status: { allowed: boolean; denied?: boolean; reason?: string };
}

/** SubjectAccessReview (by the admin) for the agent's account. */
async function sar(kube: KubeControlPlane, attrs: Attrs): Promise<Review['status']> {
  const review = await kube.api<Review>(
    'POST',
    '/apis/authorization.k8s.io/v1/subjectaccessreviews',
    {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SubjectAccessReview',
      spec: {
        user: USER,
        groups: ['system:serviceaccounts', `system:serviceaccounts:${NS}`, 'system:authenticated'],
        resourceAttributes: attrs,
      },
    },
  );
  return review.status;
}

/** SelfSubjectAccessReview made WITH the agent's token: the token itself is judged. */
async function selfReview(kube: KubeControlPlane, token: string, attrs: Attrs) {
  const review = await kube.api<Review>(
    'POST',
    '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews',
    {
      apiVersion: 'authorization.k8s.io/v1',
      kind: 'SelfSubjectAccessReview',
      spec: { resourceAttributes: attrs },
    },
    token,
  );
  return review.status;
}

test.serial('kube rbac - the minted token authenticates as the agent ServiceAccount', async (t) => {
  const { kube, token } = t.context;
  const who = await kube.api<{ status: { userInfo: { username: string; groups: string[] } } }>(
    'POST',
    '/apis/authentication.k8s.io/v1/selfsubjectreviews',
    { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' },
    token,
  );
  t.is(who.status.userInfo.username, USER);
  t.true(who.status.userInfo.groups.includes(`system:serviceaccounts:${NS}`));
  // A forged token is refused outright (401), not treated as anonymous.
  const forged = await kube.request(
    'GET',
    '/apis/l2fed.io/v1alpha1/federatednetworks',
    undefined,
    `${token}x`,
  );
  t.is(forged.status, 401);
});

test('kube rbac - every verb the agent needs is allowed (SubjectAccessReview and its own token)', async (t) => {
  t.timeout(60_000);
  const { kube, token } = t.context;
  for (const attrs of NEEDED) {
    t.true((await sar(kube, attrs)).allowed, `SAR: ${describe(attrs)}`);
    t.true((await selfReview(kube, token, attrs)).allowed, `self: ${describe(attrs)}`);
  }
});

test('kube rbac - secrets, pods, spec writes and other groups are not allowed', async (t) => {
  t.timeout(60_000);
  const { kube, token } = t.context;
  for (const attrs of FORBIDDEN) {
    t.false((await sar(kube, attrs)).allowed, `SAR: ${describe(attrs)}`);
    t.false((await selfReview(kube, token, attrs)).allowed, `self: ${describe(attrs)}`);
  }
});

test.serial(
  'kube rbac - with the token, reads and status writes succeed; the rest is Forbidden',
  async (t) => {
    t.timeout(60_000);
    const { kube, token } = t.context;
    const input = [
      'apiVersion: l2fed.io/v1alpha1',
      'kind: FederatedNetwork',
      'metadata: {name: cdn}',
      'spec: {segment: {ovsBridge: br-cdn}}',
    ].join('\n');
    await kube.kubectl(['apply', '-f', '-'], { input });
    t.teardown(() =>
      kube.kubectl(['delete', 'fednet', 'cdn', '--ignore-not-found'], { allowFailure: true }),
    );

    const as = (args: string[]) => kube.kubectl(args, { token, allowFailure: true });
    const list = await as(['get', 'fednet,cpeer', '-o', 'name']);
    t.is(list.exitCode, 0, list.stderr);
    t.is(list.stdout.trim(), 'federatednetwork.l2fed.io/cdn');
    // The agent's own status path: GET of the object, merge-PATCH of /status. (`kubectl
    // patch --subresource=status` would also GET /status, a verb the role does not grant.)
    const writer = new KubeStatusWriter(kube.kubeConfig(token));
    t.like(await writer.writeNetworkStatus('cdn', { vni: 4096, conditions: [] }), {
      type: 'written',
    });

    for (const args of [
      ['patch', 'fednet', 'cdn', '--type=merge', '-p', '{"spec":{"mtu":1400}}'],
      ['delete', 'fednet', 'cdn'],
      ['get', 'secrets', '-n', NS],
      ['get', 'pods', '-A'],
      ['get', 'deployments.apps', '-A'],
    ]) {
      const r = await as(args);
      t.not(r.exitCode, 0, `kubectl ${args.join(' ')} was allowed`);
      t.regex(r.stderr, /Forbidden|forbidden/, `kubectl ${args.join(' ')}`);
    }
    // Nothing the refused calls tried took effect.
    const obj = JSON.parse((await kube.kubectl(['get', 'fednet', 'cdn', '-o', 'json'])).stdout) as {
      spec: { mtu: unknown };
      status: { vni: number };
    };
    t.is(obj.spec.mtu, 'auto');
    t.is(obj.status.vni, 4096);
  },
);
