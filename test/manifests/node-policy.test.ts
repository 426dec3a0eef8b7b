// manifests/node-policy.yaml: the ValidatingAdmissionPolicy that keeps kg's service account to
// the kg-written annotations of its own Node. Its CEL (read from the manifest itself) runs in a
// conformance-tested CEL implementation (@bufbuild/cel, with the strings extension Kubernetes
// enables), bound the way kube-apiserver binds a policy: `object`, `oldObject`, `request` (an
// AdmissionRequest as JSON, empty fields omitted), `params` null (no paramKind), and
// `variables` evaluated in order, each seeing the ones before; a variable that fails is an
// error only where it is used, as the server's lazy evaluation makes it. Requests are made by
// applying the patches Go Kilo and kg send (design §3.1.3, §3.1.4, §11.3, §11.4) with the API
// simulator's patch code, as the server applies them before admission.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';
import { isCelError, parse, plan, celEnv, type CelValue } from '@bufbuild/cel';
import { strings } from '@bufbuild/cel/ext';
import { ValidatingAdmissionPolicy } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy';
import { ValidatingAdmissionPolicyBinding } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding';
import { jsonPatch, mergePatch, strategicMergePatch } from '../../loadtest/apiserver/index.js';
import { A } from '../../plan/node.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const FILE = join(ROOT, 'manifests/node-policy.yaml');
type Obj = Record<string, any>;
const docs = parseAllDocuments(readFileSync(FILE, 'utf8')).map((d) => d.toJS() as Obj);
const POLICY = docs.find((d) => d.kind === 'ValidatingAdmissionPolicy')!;
const BINDING = docs.find((d) => d.kind === 'ValidatingAdmissionPolicyBinding')!;

// ---- the evaluator: kube-apiserver's order for one policy ----------------------------------

const env = celEnv({ funcs: strings });
const compiled = new Map<string, (ctx: Record<string, unknown>) => unknown>();
function cel(expr: string, ctx: Record<string, unknown>): CelValue | Error {
  let f = compiled.get(expr);
  if (!f) compiled.set(expr, (f = plan(env, parse(expr)) as (ctx: Record<string, unknown>) => unknown));
  const v = f(ctx);
  return isCelError(v) ? v : (v as CelValue);
}

interface Verdict {
  /** Whether the policy applied at all (matchConstraints and matchConditions). */
  matched: boolean;
  allowed: boolean;
  /** Denials: each failed validation's message, as the server would write it. */
  messages: string[];
  /** Expressions that failed to evaluate (denied, failurePolicy: Fail). */
  errors: string[];
}

function evaluate(req: Obj): Verdict {
  const spec = POLICY.spec;
  const resource = req.resource.resource + (req.subResource ? `/${req.subResource}` : '');
  const rules = spec.matchConstraints.resourceRules as Obj[];
  if (!rules.some((r) => r.resources.includes(resource) && r.operations.includes(req.operation) && r.apiGroups.includes(req.resource.group))) {
    return { matched: false, allowed: true, messages: [], errors: [] };
  }
  const base = { object: req.object ?? null, oldObject: req.oldObject ?? null, request: req, params: null, namespaceObject: null };
  const errors: string[] = [];
  for (const m of spec.matchConditions as Obj[]) {
    const v = cel(m.expression, base);
    if (v instanceof Error) errors.push(`${m.name}: ${v.message}`);
    else if (v === false) return { matched: false, allowed: true, messages: [], errors: [] };
  }
  if (errors.length) return { matched: true, allowed: spec.failurePolicy !== 'Fail', messages: [], errors };
  const variables: Record<string, CelValue> = {};
  for (const v of spec.variables as Obj[]) {
    const r = cel(v.expression, { ...base, variables });
    // Left unbound: using it is an error there, as when the server evaluates it lazily.
    if (!(r instanceof Error)) variables[v.name] = r;
  }
  const messages: string[] = [];
  for (const val of spec.validations as Obj[]) {
    const ctx = { ...base, variables };
    const r = cel(val.expression, ctx);
    if (r instanceof Error) {
      errors.push(`${val.expression}: ${r.message}`);
      continue;
    }
    assert.equal(typeof r, 'boolean', val.expression);
    if (r) continue;
    const m = cel(val.messageExpression, ctx);
    // The server falls back to `message` when messageExpression fails; here that is a bug.
    assert.ok(typeof m === 'string' && m !== '', `messageExpression of ${val.expression}: ${m instanceof Error ? m.message : String(m)}`);
    messages.push(m as string);
  }
  return { matched: true, allowed: messages.length === 0 && errors.length === 0, messages, errors };
}

// ---- requests as the API server builds them ------------------------------------------------

const KILO = 'system:serviceaccount:kube-system:kilo';
const NODE_NAME = 'authentication.kubernetes.io/node-name';
const K = (k: string) => `kilo.squat.ai/${k}`;

/** A Node as the API server holds it: kubelet's labels, status and managed fields, kg's annotations. */
function nodeObject(name: string, annotations?: Record<string, string>): Obj {
  return {
    apiVersion: 'v1', kind: 'Node',
    metadata: {
      name, uid: `uid-${name}`, resourceVersion: '100', creationTimestamp: '2026-01-01T00:00:00Z',
      labels: { 'kubernetes.io/hostname': name, 'topology.kubernetes.io/region': 'east', 'node-role.kubernetes.io/worker': '' },
      ...(annotations ? { annotations } : {}),
      managedFields: [{ manager: 'kubelet', operation: 'Update', apiVersion: 'v1', time: '2026-01-01T00:00:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:status': {} } }],
    },
    spec: { podCIDR: '10.42.1.0/24', podCIDRs: ['10.42.1.0/24'], taints: [{ key: 'example.com/dedicated', value: 'mesh', effect: 'NoSchedule' }] },
    status: {
      capacity: { cpu: '2', memory: '8Gi', pods: '110' },
      conditions: [{ type: 'Ready', status: 'True', lastHeartbeatTime: '2026-01-01T00:00:00Z', reason: 'KubeletReady', message: 'kubelet is posting ready status' }],
      addresses: [{ type: 'InternalIP', address: '10.0.1.10' }, { type: 'Hostname', address: name }],
      daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
      nodeInfo: { kubeletVersion: 'v1.30.0', osImage: 'Debian GNU/Linux 12 (bookworm)' },
    },
  };
}

const KG_ANNOTATIONS: Record<string, string> = {
  [K('endpoint')]: '203.0.113.10:51820', [K('internal-ip')]: '10.0.1.10/24', [K('key')]: Buffer.alloc(32, 7).toString('base64'),
  [K('last-seen')]: '1764160000', [K('wireguard-ip')]: '10.4.0.1/16', [K('discovered-endpoints')]: '{}', [K('granularity')]: 'location',
  [K('cni-compatibility-ip')]: '',
};

const withAnnotations = (extra: Record<string, string> = {}) => ({ 'node.alpha.kubernetes.io/ttl': '0', 'volumes.kubernetes.io/controller-managed-attach-detach': 'true', [K('location')]: 'east', [K('allowed-location-ips')]: '192.168.7.0/24', ...KG_ANNOTATIONS, ...extra });

interface Who {
  user?: string;
  /** The bound token's node-name extra; undefined: the token has no extra at all. */
  extra?: Record<string, string[]>;
}
const own = (node: string): Who => ({ extra: { [NODE_NAME]: [node], 'authentication.kubernetes.io/node-uid': [`uid-${node}`], 'authentication.kubernetes.io/pod-name': [`kilo-${node}`] } });

/** An AdmissionRequest as JSON, with Go's omitempty: absent subResource, extra, object… */
function admission(operation: string, name: string, object: Obj | null, oldObject: Obj | null, who: Who = own(name), subResource = ''): Obj {
  const gvr = { group: '', version: 'v1', resource: 'nodes' };
  const gvk = { group: '', version: 'v1', kind: 'Node' };
  return {
    uid: 'req-1', kind: gvk, resource: gvr, ...(subResource ? { subResource } : {}), requestKind: gvk, requestResource: gvr, ...(subResource ? { requestSubResource: subResource } : {}),
    name, operation,
    userInfo: { username: who.user ?? KILO, uid: 'sa-uid', groups: ['system:serviceaccounts', 'system:serviceaccounts:kube-system', 'system:authenticated'], ...(who.extra ? { extra: who.extra } : {}) },
    ...(object ? { object } : {}), ...(oldObject ? { oldObject } : {}), dryRun: false,
    options: { apiVersion: 'meta.k8s.io/v1', kind: operation === 'CREATE' ? 'CreateOptions' : operation === 'DELETE' ? 'DeleteOptions' : 'PatchOptions' },
  };
}

/** What the server hands to admission for a PATCH: the patched object, its managed fields updated. */
function patched(old: Obj, apply: (o: Obj) => Obj, manager = 'kg'): Obj {
  const o = apply(structuredClone(old));
  o.metadata.managedFields = [...old.metadata.managedFields, { manager, operation: 'Update', apiVersion: 'v1', time: '2026-01-01T00:01:00Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:annotations': {} } } }];
  return o;
}

function update(old: Obj, apply: (o: Obj) => Obj, who?: Who, name = old.metadata.name): Verdict {
  return evaluate(admission('UPDATE', name, patched(old, apply), old, who));
}
const allowed = (v: Verdict, what: string) => assert.deepEqual(v, { matched: true, allowed: true, messages: [], errors: [] }, what);
function denied(v: Verdict, message: RegExp, what: string) {
  assert.equal(v.allowed, false, what);
  assert.deepEqual(v.errors, [], `${what}: no expression failed`);
  assert.equal(v.messages.length, 1, `${what}: ${v.messages.join(' | ')}`);
  assert.match(v.messages[0], message, what);
}

// ---- the tests ------------------------------------------------------------------------------

test('node policy: valid against the Kubernetes schema (kubernetes-models 4.5, admissionregistration.k8s.io/v1)', () => {
  assert.deepEqual(docs.map((d) => `${d.apiVersion} ${d.kind}`), ['admissionregistration.k8s.io/v1 ValidatingAdmissionPolicy', 'admissionregistration.k8s.io/v1 ValidatingAdmissionPolicyBinding']);
  new ValidatingAdmissionPolicy(POLICY as never).validate();
  new ValidatingAdmissionPolicyBinding(BINDING as never).validate();
  assert.equal(BINDING.spec.policyName, POLICY.metadata.name);
  assert.deepEqual(BINDING.spec.validationActions, ['Deny']);
  assert.equal(POLICY.spec.failurePolicy, 'Fail');
  // Every expression parses; the validator is live.
  for (const e of [...POLICY.spec.matchConditions, ...POLICY.spec.variables, ...POLICY.spec.validations]) {
    parse(e.expression);
    if (e.messageExpression) parse(e.messageExpression);
  }
  assert.throws(() => new ValidatingAdmissionPolicyBinding({ ...BINDING, spec: { ...BINDING.spec, validationActions: 'Deny' } } as never).validate());
});

test('node policy: it names the service account the DaemonSets run as, and the annotations kg writes', () => {
  const accounts = new Set<string>();
  for (const f of ['kilo-k3s.yaml', 'kilo-kubeadm-flannel.yaml', 'kilo-kubeadm-userspace.yaml', 'kilo-kubeadm.yaml']) {
    for (const d of parseAllDocuments(readFileSync(join(ROOT, 'manifests', f), 'utf8')).map((x) => x.toJS() as Obj)) {
      if (d?.kind === 'DaemonSet') accounts.add(`system:serviceaccount:${d.metadata.namespace}:${d.spec.template.spec.serviceAccountName}`);
    }
  }
  assert.deepEqual([...accounts], [KILO]);
  assert.equal(POLICY.spec.matchConditions[0].expression, `request.userInfo.username == '${KILO}'`);
  // The eight of design §3.1.3 and kg's check-in period: what main/agent/agent.ts publishes and removes.
  const listed = cel(POLICY.spec.variables.find((v: Obj) => v.name === 'agentAnnotations').expression, {});
  assert.deepEqual([...(listed as Iterable<string>)].sort(), [A.endpoint, A.internalIP, A.key, A.lastSeen, A.wireGuardIP, A.discoveredEndpoints, A.granularity, A.cniCompatibilityIP, A.checkInPeriod].sort());
});

test('node policy: the writes of kg and of Go Kilo on their own Node pass', () => {
  const old = nodeObject('alpha', withAnnotations());
  // kg: a JSON merge patch of the annotations that changed (main/agent/agent.ts publish).
  allowed(update(old, (o) => mergePatch(o, { metadata: { annotations: { [K('last-seen')]: '1764160030', [K('endpoint')]: '203.0.113.11:51820' } } })), 'kg check-in');
  // kg, adaptive heartbeats: the period added, then removed with null.
  const adaptive = patched(old, (o) => mergePatch(o, { metadata: { annotations: { [K('check-in-period')]: '334' } } }));
  allowed(evaluate(admission('UPDATE', 'alpha', adaptive, old)), 'check-in-period added');
  allowed(update(adaptive, (o) => mergePatch(o, { metadata: { annotations: { [K('check-in-period')]: null } } })), 'check-in-period removed');
  // Go Kilo, first start: a strategic merge patch of all eight (design §3.1.3) on a Node that has
  // no annotations map at all (the absent-map case on the old side).
  const bare = nodeObject('alpha');
  allowed(update(bare, (o) => strategicMergePatch(o, { metadata: { annotations: KG_ANNOTATIONS } }), undefined), 'Go: first publish onto a Node without annotations');
  // Go Kilo, check-in (§11.4): only the changed ones.
  allowed(update(old, (o) => strategicMergePatch(o, { metadata: { annotations: { [K('last-seen')]: '1764160060', [K('discovered-endpoints')]: `{"${Buffer.alloc(32, 9).toString('base64')}":{"IP":"198.51.100.7","Port":40123,"Zone":""}}` } } })), 'Go check-in');
  // Go Kilo, clean-up (§3.1.4): a JSON patch removing seven; kg's adds the period when it has one.
  const cleanup = ['endpoint', 'internal-ip', 'key', 'last-seen', 'wireguard-ip', 'discovered-endpoints', 'granularity'].map((k) => ({ op: 'remove', path: `/metadata/annotations/kilo.squat.ai~1${k}` }));
  allowed(update(old, (o) => jsonPatch(o, cleanup)), 'Go clean-up');
  // Removing every annotation kg wrote from a Node that has only those: the new map is absent.
  const onlyKg = nodeObject('alpha', { ...KG_ANNOTATIONS });
  const emptied = patched(onlyKg, (o) => {
    delete o.metadata.annotations;
    return o;
  });
  allowed(evaluate(admission('UPDATE', 'alpha', emptied, onlyKg)), 'all of kg\'s annotations removed (the new map absent)');
  // A PUT (update) of the whole object with only kg's annotations changed, and a no-op.
  allowed(update(old, (o) => ({ ...o, metadata: { ...o.metadata, annotations: { ...o.metadata.annotations, [K('key')]: Buffer.alloc(32, 8).toString('base64') } } })), 'PUT');
  allowed(update(old, (o) => o), 'no change');
});

test('node policy: other Nodes, other users and tokens without a node are told apart', () => {
  const beta = nodeObject('beta', withAnnotations());
  const patchKey = (o: Obj) => mergePatch(o, { metadata: { annotations: { [K('key')]: Buffer.alloc(32, 1).toString('base64') } } });
  denied(update(beta, patchKey, own('alpha')), /^kilo on alpha may not change Node beta$/, 'another node\'s key');
  denied(update(beta, patchKey, { extra: {} }), /its token names none/, 'extra without the node name');
  denied(update(beta, patchKey, {}), /its token names none/, 'a token without extra (a legacy secret token)');
  denied(update(beta, patchKey, { extra: { [NODE_NAME]: [] } }), /its token names none/, 'an empty node name');
  denied(update(beta, patchKey, { extra: { [NODE_NAME]: ['beta', 'alpha'] } }), /^kilo on beta, alpha may not change Node beta$/, 'two node names');
  // Other users are not this policy's business (RBAC and their own policies are).
  for (const user of ['system:node:beta', 'kubernetes-admin', 'system:serviceaccount:kube-system:kilo2', 'system:serviceaccount:other:kilo']) {
    const v = update(beta, (o) => mergePatch(o, { metadata: { labels: { 'node-role.kubernetes.io/worker': null } } }), { user });
    assert.deepEqual([v.matched, v.allowed], [false, true], user);
  }
});

test('node policy: only the annotations a Kilo agent writes, exact keys', () => {
  const old = nodeObject('alpha', withAnnotations());
  const set = (k: string, v: string | null) => update(old, (o) => mergePatch(o, { metadata: { annotations: { [k]: v } } }));
  // The operator's kilo.squat.ai annotations: a node claiming traffic, leadership, a location.
  for (const k of ['allowed-location-ips', 'leader', 'location', 'force-endpoint', 'force-internal-ip', 'persistent-keepalive', 'no-such-annotation']) {
    denied(set(K(k), '0.0.0.0/1'), new RegExp(`^kilo may only change the annotations a Kilo agent writes, not: kilo\\.squat\\.ai/${k}$`), `set ${k}`);
  }
  denied(set(K('allowed-location-ips'), null), /not: kilo\.squat\.ai\/allowed-location-ips$/, 'removing the operator\'s claim');
  denied(set(K('location'), 'east'.toUpperCase()), /kilo\.squat\.ai\/location/, 'changing the location');
  // Look-alikes and other keys, added, changed or removed.
  for (const k of ['kilo.squat.ai.evil/key', 'xkilo.squat.ai/key', 'KILO.SQUAT.AI/key', 'kilo.squat.ai', 'kilo.squat.ai/key/x', 'kilo.squat.ai//key', 'example.com/owner']) {
    denied(set(k, 'x'), new RegExp(`not: ${k.replace(/[./]/g, '\\$&')}$`), `look-alike ${k}`);
  }
  denied(set('node.alpha.kubernetes.io/ttl', '30'), /not: node\.alpha\.kubernetes\.io\/ttl$/, 'changing another annotation');
  denied(set('volumes.kubernetes.io/controller-managed-attach-detach', null), /not: volumes\.kubernetes\.io\/controller-managed-attach-detach$/, 'removing another annotation');
  // Every annotation removed (the new map absent): the foreign ones are named.
  const gone = patched(old, (o) => {
    delete o.metadata.annotations;
    return o;
  });
  denied(evaluate(admission('UPDATE', 'alpha', gone, old)), /^kilo may only change the annotations a Kilo agent writes, not: (?=.*node\.alpha\.kubernetes\.io\/ttl)(?=.*kilo\.squat\.ai\/allowed-location-ips).*$/, 'the whole map removed');
  // Allowed and refused keys in one patch: refused, naming only the refused one.
  denied(update(old, (o) => mergePatch(o, { metadata: { annotations: { [K('last-seen')]: '1', [K('leader')]: 'true' } } })), /not: kilo\.squat\.ai\/leader$/, 'mixed');
});

test('node policy: labels, spec, status, owners, finalizers, create, delete and the status subresource are refused', () => {
  const old = nodeObject('alpha', withAnnotations());
  const other = (f: (o: Obj) => Obj, what: RegExp, name: string) => denied(update(old, f), what, name);
  other((o) => mergePatch(o, { metadata: { labels: { 'topology.kubernetes.io/region': 'west' } } }), /^kilo may change nothing but annotations on Node alpha; changed: labels$/, 'topology label');
  other((o) => mergePatch(o, { metadata: { labels: null } }), /changed: labels$/, 'labels removed (the map absent)');
  other((o) => mergePatch(o, { spec: { taints: null } }), /changed: spec$/, 'taints removed');
  other((o) => mergePatch(o, { spec: { unschedulable: true } }), /changed: spec$/, 'cordon');
  other((o) => mergePatch(o, { status: { addresses: [{ type: 'InternalIP', address: '10.9.9.9' }] } }), /changed: status$/, 'status through the object');
  other((o) => mergePatch(o, { metadata: { finalizers: ['example.com/hold'] } }), /changed: finalizers$/, 'finalizer');
  other((o) => mergePatch(o, { metadata: { ownerReferences: [{ apiVersion: 'v1', kind: 'Pod', name: 'x', uid: 'u' }] } }), /changed: ownerReferences$/, 'owner');
  other((o) => mergePatch(o, { metadata: { labels: { a: 'b' } }, spec: { unschedulable: true } }), /changed: labels, spec$/, 'several at once');
  const v = update(old, (o) => mergePatch(o, { metadata: { labels: { a: 'b' }, annotations: { [K('leader')]: '' } } }));
  assert.deepEqual(v.messages, ['kilo may only change the annotations a Kilo agent writes, not: kilo.squat.ai/leader', 'kilo may change nothing but annotations on Node alpha; changed: labels'], 'each validation says its part');
  // Not updates of the object: create, delete, the status subresource; the other validations
  // hold their peace (they only speak about object updates), so there is one clear message.
  denied(evaluate(admission('CREATE', 'gamma', nodeObject('gamma', KG_ANNOTATIONS), null, own('gamma'))), /^kilo may only update Node objects, not CREATE$/, 'create');
  denied(evaluate(admission('DELETE', 'alpha', null, old)), /^kilo may only update Node objects, not DELETE$/, 'delete');
  const status = patched(old, (o) => mergePatch(o, { status: { conditions: [] } }));
  denied(evaluate(admission('UPDATE', 'alpha', status, old, own('alpha'), 'status')), /^kilo may only update Node objects, not UPDATE status$/, 'status subresource');
  // Subresources the rules do not list (nodes/proxy is CONNECT, which RBAC does not grant).
  assert.equal(evaluate(admission('CONNECT', 'alpha', null, null, own('alpha'), 'proxy')).matched, false);
});

test('node policy: the evaluator is live (a broken expression is an error, a wrong one a denial)', () => {
  const old = nodeObject('alpha', withAnnotations());
  const good = update(old, (o) => mergePatch(o, { metadata: { annotations: { [K('last-seen')]: '2' } } }));
  allowed(good, 'baseline');
  const saved = POLICY.spec.variables.find((v: Obj) => v.name === 'agentAnnotations').expression;
  try {
    POLICY.spec.variables.find((v: Obj) => v.name === 'agentAnnotations').expression = "['kilo.squat.ai/key']";
    denied(update(old, (o) => mergePatch(o, { metadata: { annotations: { [K('last-seen')]: '2' } } })), /not: kilo\.squat\.ai\/last-seen$/, 'a narrower list refuses');
    POLICY.spec.variables.find((v: Obj) => v.name === 'agentAnnotations').expression = 'object.nope.nope';
    const v = update(old, (o) => mergePatch(o, { metadata: { annotations: { [K('last-seen')]: '2' } } }));
    assert.equal(v.allowed, false);
    assert.equal(v.errors.length, 1, v.errors.join('\n'));
  } finally {
    POLICY.spec.variables.find((v: Obj) => v.name === 'agentAnnotations').expression = saved;
  }
});
