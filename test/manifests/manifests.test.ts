// The deployment manifests (manifests/): every object validated against the Kubernetes OpenAPI
// schemas (kubernetes-models' validators; PodMonitor with the Prometheus Operator's, Peers with
// the schema of our own CRD through Ajv), every kg flag parsed and validated by kg's own flag
// code, RBAC checked for least privilege, the Grafana dashboard checked against the metrics kg
// really registers, the k3s kubeconfig script run, and every manifest `kubectl apply`d to the
// API simulator.
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import { parseAllDocuments } from 'yaml';
import type { Model } from '@kubernetes-models/base';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Job } from 'kubernetes-models/batch/v1/Job';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ValidatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration';
import { ValidatingAdmissionPolicy } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy';
import { ValidatingAdmissionPolicyBinding } from 'kubernetes-models/admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { PodMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/PodMonitor';
import { startApiServer } from '../../loadtest/apiserver/index.js';
import { AGENT_FLAGS, parseFlags, toConfig } from '../../main/flags.js';
import { loadKubeConfig } from '../../workers/kube-config.js';
import { createMetrics } from '../../main/agent/metrics.js';
import { WEBHOOK_FLAGS, webhookMetrics } from '../../main/webhook.js';
import { manifestWebhook } from '../../bench/webhook.js';
import { IoClient } from '../../workers/io-client.js';
import { validatePeer } from '../../plan/peer.js';
import { kubectlFor } from '../apiserver/helpers.js';

const ROOT = new URL('../../../', import.meta.url).pathname;
const DIR = join(ROOT, 'manifests');
const VERSION = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string> }; [k: string]: any };
const YAML_FILES = readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort();
const load = (file: string): Obj[] => parseAllDocuments(readFileSync(file, 'utf8')).map((d) => d.toJS() as Obj).filter((o) => o && o.kind);
const ALL: [string, Obj][] = YAML_FILES.flatMap((f) => load(join(DIR, f)).map((o) => [f, o] as [string, Obj]));

const MODELS: Record<string, new (data: any) => Model<unknown>> = {
  'v1/ConfigMap': ConfigMap,
  'v1/Namespace': Namespace,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
  'apps/v1/DaemonSet': DaemonSet,
  'apps/v1/Deployment': Deployment,
  'batch/v1/Job': Job,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'rbac.authorization.k8s.io/v1/ClusterRole': ClusterRole,
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': ClusterRoleBinding,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'admissionregistration.k8s.io/v1/ValidatingWebhookConfiguration': ValidatingWebhookConfiguration,
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicy': ValidatingAdmissionPolicy,
  'admissionregistration.k8s.io/v1/ValidatingAdmissionPolicyBinding': ValidatingAdmissionPolicyBinding,
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition,
  'monitoring.coreos.com/v1/PodMonitor': PodMonitor,
};

/** The Peer CRD's OpenAPI v3 schema as an Ajv validator (int32 and friends as Kubernetes reads them). */
function peerSchema() {
  const crd = load(join(DIR, 'crds.yaml')).find((o) => o.kind === 'CustomResourceDefinition')!;
  const ajv = new Ajv({ strict: false, allErrors: true });
  ajv.addFormat('int32', { type: 'number', validate: (n: number) => Number.isInteger(n) && n >= -(2 ** 31) && n < 2 ** 31 });
  return ajv.compile(crd.spec.versions[0].schema.openAPIV3Schema);
}

function validateObject(o: Obj): string | null {
  if (o.apiVersion === 'kilo.squat.ai/v1alpha1' && o.kind === 'Peer') {
    const v = peerSchema();
    return v(o) ? null : (v.errors ?? []).map((e) => `${e.instancePath} ${e.message}`).join('; ');
  }
  const M = MODELS[`${o.apiVersion}/${o.kind}`];
  if (!M) return `no schema for ${o.apiVersion} ${o.kind}`;
  try {
    new M(o).validate();
    return null;
  } catch (e) {
    return (e as Error).message;
  }
}

test('manifests: every object is valid against the Kubernetes OpenAPI schemas (and CRD schemas)', () => {
  assert.deepEqual(YAML_FILES, ['crds.yaml', 'kilo-k3s.yaml', 'kilo-kubeadm-flannel.yaml', 'kilo-kubeadm-userspace.yaml', 'kilo-kubeadm.yaml', 'node-policy.yaml', 'peer-validation.yaml', 'podmonitor.yaml']);
  assert.ok(ALL.length >= 30, `${ALL.length} objects`);
  for (const [f, o] of ALL) assert.equal(validateObject(o), null, `${f}: ${o.kind} ${o.metadata?.name}`);
  // The example Peers validate against the CRD schema and against kg's own validation.
  const examples = load(join(ROOT, 'examples/peers.yaml')).flatMap((l) => l.items as Obj[]);
  assert.ok(examples.length > 0);
  for (const p of examples) {
    assert.equal(validateObject(p), null, p.metadata.name);
    assert.equal(validatePeer(p), null, p.metadata.name);
  }
  // The validators are live: broken objects are rejected.
  const ds = structuredClone(ALL.find(([, o]) => o.kind === 'DaemonSet')![1]);
  ds.spec.template.spec.containers[0].ports[0].containerPort = 'metrics';
  assert.match(validateObject(ds) ?? '', /containerPort must be integer/);
  const noSelector = structuredClone(ALL.find(([, o]) => o.kind === 'DaemonSet')![1]);
  delete noSelector.spec.selector;
  assert.match(validateObject(noSelector) ?? '', /selector/);
  const pm = structuredClone(ALL.find(([, o]) => o.kind === 'PodMonitor')![1]);
  pm.spec.podMetricsEndpoints = 'metrics';
  assert.notEqual(validateObject(pm), null, 'PodMonitor schema is checked');
  const badPeer = { apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', metadata: { name: 'x' }, spec: { allowedIPs: ['10.5.0.1/32'], endpoint: { dnsOrIP: {}, port: 'x' } } };
  assert.match(validateObject(badPeer as Obj) ?? '', /publicKey/);
  assert.equal(validateObject({ apiVersion: 'v9', kind: 'Gadget', metadata: { name: 'g' } }), 'no schema for v9 Gadget');
});

/** The values of `$(VAR)` references a container's env defines, with sample values for the downward API. */
function expand(arg: string, env: { name: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[]): string {
  return arg.replace(/\$\(([A-Z_]+)\)/g, (_, name: string) => {
    const e = env.find((x) => x.name === name);
    assert.ok(e, `$(${name}) is defined in the container's env`);
    const path = e.valueFrom?.fieldRef?.fieldPath;
    return path === 'spec.nodeName' ? 'node-1' : path === 'status.hostIP' ? '192.0.2.10' : 'value';
  });
}

function kgContainers(): { file: string; name: string; args: string[]; env: any[] }[] {
  const out = [];
  for (const [file, o] of ALL) {
    if (o.kind !== 'DaemonSet' && o.kind !== 'Deployment') continue;
    for (const c of o.spec.template.spec.containers) {
      if (c.command?.[0] === '/opt/bin/kg') out.push({ file, name: `${o.metadata.name}/${c.name}`, args: c.args ?? [], env: c.env ?? [] });
    }
  }
  return out;
}

test('manifests: every kg flag is a real flag, and its value passes kg\'s validation', () => {
  const cs = kgContainers();
  assert.equal(cs.length, 5, cs.map((c) => c.name).join(', '));
  for (const c of cs) {
    if (c.args[0] === 'webhook') {
      const { values, positionals } = parseFlags(c.args.slice(1), WEBHOOK_FLAGS);
      assert.deepEqual(positionals, [], c.name);
      assert.equal(values.listen, ':8443');
      continue;
    }
    const args = c.args.map((a) => expand(a, c.env));
    const { values, positionals } = parseFlags(args, AGENT_FLAGS);
    assert.deepEqual(positionals, [], `${c.file} ${c.name}`);
    const conf = toConfig(values);
    assert.equal(conf.hostname, 'node-1', `${c.file}: --hostname=$(NODE_NAME)`);
    assert.equal(conf.kubeconfig, '/etc/kubernetes/kubeconfig');
    if (c.file.includes('flannel')) {
      assert.equal(conf.cni, false);
      assert.equal(conf.compatibility, 'flannel');
      assert.equal(conf.local, false);
      assert.deepEqual(conf.internalCIDRs.map((x) => x.s), ['192.0.2.10/32']);
    }
    if (c.file.includes('userspace')) assert.equal(conf.createInterface, false);
  }
  // A flag that does not exist is caught by the same check.
  assert.throws(() => parseFlags(['--heartbeat-lease=true'], AGENT_FLAGS), /unknown flag/);
});

test('manifests: least-privilege RBAC, the same in every DaemonSet manifest', () => {
  const roles = ALL.filter(([, o]) => o.kind === 'ClusterRole' && o.metadata.name === 'kilo');
  assert.equal(roles.length, 4);
  for (const [f, r] of roles) {
    assert.deepEqual(r.rules, [
      { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch', 'patch'] },
      // Peers: list and watch only, as Go Kilo's role (kg's reflector never reads one Peer).
      { apiGroups: ['kilo.squat.ai'], resources: ['peers'], verbs: ['list', 'watch'] },
      { apiGroups: ['apiextensions.k8s.io'], resources: ['customresourcedefinitions'], resourceNames: ['peers.kilo.squat.ai'], verbs: ['get'] },
    ], f);
  }
  for (const [f, o] of ALL) {
    for (const rule of o.rules ?? []) {
      const all = [...rule.apiGroups, ...rule.resources, ...rule.verbs];
      assert.ok(!all.includes('*'), `${f} ${o.metadata.name}: no wildcards`);
      assert.ok(!rule.resources.includes('leases'), `${f} ${o.metadata.name}: no Leases (kg's heartbeats are Node annotations)`);
      assert.ok(!rule.verbs.includes('delete') && !rule.verbs.includes('deletecollection'), `${f}: nothing deletes`);
    }
  }
  const bindings = ALL.filter(([, o]) => o.kind === 'ClusterRoleBinding' && o.metadata.name === 'kilo');
  for (const [f, b] of bindings) assert.deepEqual(b.subjects, [{ kind: 'ServiceAccount', name: 'kilo', namespace: 'kube-system' }], f);
});

test('manifests: DaemonSets have Kilo\'s common shape (design §15.2) and run this version\'s image', () => {
  const dss = ALL.filter(([, o]) => o.kind === 'DaemonSet');
  assert.equal(dss.length, 4);
  for (const [f, d] of dss) {
    const s = d.spec.template.spec;
    assert.equal(d.metadata.namespace, 'kube-system', f);
    assert.equal(s.hostNetwork, true, f);
    assert.equal(s.serviceAccountName, 'kilo', f);
    assert.deepEqual(s.tolerations, [{ effect: 'NoSchedule', operator: 'Exists' }, { effect: 'NoExecute', operator: 'Exists' }], f);
    assert.deepEqual(d.spec.selector.matchLabels, d.spec.template.metadata.labels, f);
    const kilo = s.containers.find((c: any) => c.name === 'kilo');
    assert.equal(kilo.securityContext.privileged, true, f);
    assert.deepEqual(kilo.ports, [{ containerPort: 1107, name: 'metrics' }], f);
    for (const c of [...s.containers, ...(s.initContainers ?? [])]) assert.equal(c.image, `kg:${VERSION}`, `${f} ${c.name}`);
    const mounts = Object.fromEntries(kilo.volumeMounts.map((m: any) => [m.mountPath, m.name]));
    for (const p of ['/var/lib/kilo', '/etc/kubernetes', '/lib/modules', '/run/xtables.lock']) assert.ok(mounts[p], `${f}: ${p} mounted`);
    assert.equal(s.volumes.find((v: any) => v.name === 'xtables-lock').hostPath.type, 'FileOrCreate');
    // Every mount names a volume of the pod.
    const vols = new Set(s.volumes.map((v: any) => v.name));
    for (const c of [...s.containers, ...(s.initContainers ?? [])]) for (const m of c.volumeMounts ?? []) assert.ok(vols.has(m.name), `${f} ${c.name}: volume ${m.name}`);
    const cni = !f.includes('flannel');
    assert.equal(!!s.initContainers?.some((c: any) => c.name === 'install-cni'), cni, `${f}: install-cni only with Kilo as the CNI`);
    if (f.includes('userspace')) {
      const wg = s.containers.find((c: any) => c.name === 'wireguard');
      assert.deepEqual(wg.command, ['/usr/bin/wireguard-go', '--foreground', 'kilo0']);
      assert.ok(kilo.volumeMounts.some((m: any) => m.mountPath === '/var/run/wireguard') && wg.volumeMounts.some((m: any) => m.mountPath === '/var/run/wireguard'), 'the UAPI socket directory is shared');
    }
  }
  // The CNI configuration kg starts from is valid JSON for the bridge plugin.
  const cm = ALL.find(([f, o]) => f === 'kilo-kubeadm.yaml' && o.kind === 'ConfigMap')![1];
  const conf = JSON.parse(cm.data['cni-conf.json']);
  assert.equal(conf.plugins[0].type, 'bridge');
});

test('manifests: the PodMonitor scrapes the pods and ports the workloads declare', () => {
  const pm = ALL.find(([, o]) => o.kind === 'PodMonitor')![1];
  const sel = pm.spec.selector.matchLabels as Record<string, string>;
  const scraped = ALL.filter(([, o]) => (o.kind === 'DaemonSet' || o.kind === 'Deployment') && Object.entries(sel).every(([k, v]) => o.spec.template.metadata.labels[k] === v));
  assert.equal(scraped.length, 5);
  for (const [f, o] of scraped) {
    assert.ok(pm.spec.namespaceSelector.matchNames.includes(o.metadata.namespace), `${f}: namespace ${o.metadata.namespace}`);
    assert.ok(o.spec.template.spec.containers.some((c: any) => (c.ports ?? []).some((p: any) => p.name === pm.spec.podMetricsEndpoints[0].port)), `${f}: a port named metrics`);
  }
  assert.equal(pm.spec.podMetricsEndpoints[0].path, '/metrics');
  assert.equal(pm.spec.podMetricsEndpoints[0].interval, '15s');
});

test('manifests: the webhook\'s configuration, Service, Deployment and certificate Jobs fit together', () => {
  const pv = load(join(DIR, 'peer-validation.yaml'));
  const get = (kind: string, name: string) => pv.find((o) => o.kind === kind && o.metadata.name === name)!;
  const vwc = get('ValidatingWebhookConfiguration', 'peers.kilo.squat.ai');
  const hook = vwc.webhooks[0];
  assert.deepEqual(hook.rules, [{ apiGroups: ['kilo.squat.ai'], apiVersions: ['v1alpha1'], operations: ['CREATE', 'UPDATE'], resources: ['peers'], scope: 'Cluster' }]);
  assert.deepEqual([hook.admissionReviewVersions, hook.sideEffects, hook.timeoutSeconds, hook.failurePolicy], [['v1'], 'None', 5, 'Fail']);
  const svc = get('Service', hook.clientConfig.service.name);
  assert.equal(svc.metadata.namespace, hook.clientConfig.service.namespace);
  assert.equal(hook.clientConfig.service.path, '/validate');
  assert.equal(svc.spec.ports[0].port, hook.clientConfig.service.port);
  const dep = get('Deployment', 'peer-validation');
  assert.deepEqual(svc.spec.selector, dep.spec.template.metadata.labels);
  // A drain never takes both replicas: with failurePolicy Fail that would refuse every Peer write.
  const pdb = get('PodDisruptionBudget', 'peer-validation');
  assert.deepEqual(pdb.spec.selector.matchLabels, dep.spec.selector.matchLabels);
  assert.ok(pdb.spec.minAvailable >= 1 && pdb.spec.minAvailable < dep.spec.replicas, 'one replica may go, at least one stays');
  const c = dep.spec.template.spec.containers[0];
  assert.ok(c.ports.some((p: any) => p.name === svc.spec.ports[0].targetPort && p.containerPort === 8443));
  assert.equal(dep.spec.template.spec.securityContext.runAsUser, 1000);
  assert.equal(dep.spec.template.spec.securityContext.runAsNonRoot, true);
  const secret = dep.spec.template.spec.volumes[0].secret.secretName;
  for (const job of pv.filter((o) => o.kind === 'Job')) {
    assert.ok(job.spec.template.spec.containers[0].args.includes(`--secret-name=${secret}`), job.metadata.name);
  }
  assert.ok(get('Job', 'kilo-peer-validation-certgen-patch').spec.template.spec.containers[0].args.includes(`--webhook-name=${vwc.metadata.name}`));
  // The certgen ClusterRole may only touch this one webhook configuration.
  assert.deepEqual(get('ClusterRole', 'kilo-peer-validation-certgen').rules[0].resourceNames, [vwc.metadata.name]);
  // Both probes ask the server that answers reviews, over TLS (test/webhook serves /healthz):
  // until it serves, the pod is not Ready and the Service has no endpoint.
  for (const probe of [c.readinessProbe, c.livenessProbe]) {
    assert.deepEqual(probe.httpGet, { scheme: 'HTTPS', path: '/healthz', port: 'webhook' });
    assert.ok(probe.timeoutSeconds >= 3, 'a probe may wait behind reviews (~0.1 s each) and other connections');
  }
  assert.ok(c.readinessProbe.periodSeconds * c.readinessProbe.failureThreshold <= 30, 'a webhook that stops answering leaves the Service soon');
  assert.ok(c.livenessProbe.periodSeconds * c.livenessProbe.failureThreshold >= 60, 'a busy webhook is not restarted');
  // Memory: a request and a limit (measured by bench/webhook.ts, asserted under attack by
  // test/hostile/webhook.test.ts), V8's heap well inside the limit, options Node accepts.
  const { memoryLimit, memoryRequest, nodeOptions } = manifestWebhook();
  assert.ok(memoryRequest > 0 && memoryRequest <= memoryLimit && c.resources.requests.cpu);
  const heapMiB = Number(/--max-old-space-size=(\d+)/.exec(nodeOptions)?.[1]);
  assert.ok(heapMiB > 0 && heapMiB * 2 ** 20 <= memoryLimit / 2, `heap ${heapMiB} MiB, limit ${memoryLimit / 2 ** 20} MiB`);
  const node = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(require("v8").getHeapStatistics().heap_size_limit >> 20))'], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: nodeOptions } });
  assert.equal(node.status, 0, node.stderr);
  assert.ok(Number(node.stdout) < heapMiB * 1.2, `V8 heap limit ${node.stdout} MiB`);
});

/** Metric names a PromQL expression reads (functions, label matchers, ranges and grouping stripped). */
export function promqlMetrics(expr: string): string[] {
  const s = expr
    .replace(/"[^"]*"/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  const out: string[] = [];
  for (const m of s.matchAll(/[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = s.slice(m.index! + m[0].length).trimStart();
    if (after.startsWith('(')) continue; // a function
    if (['bool', 'offset', 'and', 'or', 'unless'].includes(m[0])) continue;
    out.push(m[0]);
  }
  return out;
}

test('manifests: the Grafana dashboard reads only metrics kg exports', async () => {
  const m = createMetrics();
  new IoClient({}, { registry: m.registry }); // registers the I/O worker's counters; starts no worker
  const w = webhookMetrics();
  const known = new Set<string>();
  for (const x of [...(await m.registry.getMetricsAsJSON()), ...(await w.registry.getMetricsAsJSON())]) {
    known.add(x.name);
    if (String(x.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) known.add(x.name + suffix);
  }
  const dash = JSON.parse(readFileSync(join(DIR, 'grafana-dashboard.json'), 'utf8'));
  const exprs: string[] = dash.panels.flatMap((p: any) => p.targets.map((t: any) => t.expr));
  for (const v of dash.templating.list) if (v.query?.query) exprs.push(v.query.query.replace(/^label_values\(([^,]+),.*$/, '$1'));
  const used = new Set(exprs.flatMap(promqlMetrics));
  assert.ok(used.size >= 25, `the dashboard covers kg's metrics (${used.size})`);
  const unknown = [...used].filter((n) => !known.has(n));
  assert.deepEqual(unknown, [], 'metrics the dashboard reads but kg does not export');
  // The check is live: a made-up metric is found.
  assert.deepEqual(promqlMetrics('histogram_quantile(0.9, sum by (le) (rate(kg_made_up_bucket{instance=~"$i"}[5m])))'), ['kg_made_up_bucket']);
  // Grafana's own structure: unique ids, a position and a data source per panel.
  assert.equal(new Set(dash.panels.map((p: any) => p.id)).size, dash.panels.length);
  for (const p of dash.panels) assert.ok(p.gridPos && p.datasource?.uid === '${datasource}' && p.targets.length > 0, p.title);
});

test('manifests: the k3s init script writes a kubeconfig kg loads (token re-read from its file)', async () => {
  const cm = load(join(DIR, 'kilo-k3s.yaml')).find((o) => o.metadata.name === 'kilo-scripts')!;
  const dir = mkdtempSync(join(tmpdir(), 'kg-k3s-'));
  try {
    const agent = join(dir, 'agent');
    const etc = join(dir, 'etc');
    const sa = join(dir, 'token');
    spawnSync('mkdir', ['-p', agent, etc]);
    writeFileSync(join(agent, 'kubelet.kubeconfig'), 'apiVersion: v1\nclusters:\n- cluster:\n    certificate-authority: /var/lib/rancher/k3s/agent/server-ca.crt\n    server: https://127.0.0.1:6444\n  name: local\n');
    writeFileSync(sa, 'token-one');
    const script = (cm.data['init.sh'] as string)
      .replaceAll('/var/lib/rancher/k3s/agent', agent)
      .replaceAll('/etc/kubernetes', etc)
      .replaceAll('/var/run/secrets/kubernetes.io/serviceaccount/token', sa);
    const r = spawnSync('sh', ['-c', script], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    writeFileSync(join(agent, 'server-ca.crt'), '');
    const kc = loadKubeConfig({ kubeconfig: join(etc, 'kubeconfig'), master: '' });
    assert.equal(kc.getCurrentCluster()!.server, 'https://127.0.0.1:6444');
    assert.equal(kc.getCurrentCluster()!.caFile, join(agent, 'server-ca.crt'));
    const opts: { headers?: Record<string, string> } = { headers: {} };
    await kc.applyToHTTPSOptions(opts as never);
    assert.equal(opts.headers!.Authorization, 'Bearer token-one');
    // The kubelet rotates the projected token; the tokenFile provider re-reads it after a minute.
    writeFileSync(sa, 'token-two');
    mock.timers.enable({ apis: ['Date'], now: Date.now() });
    try {
      await kc.applyToHTTPSOptions(opts as never);
      assert.equal(opts.headers!.Authorization, 'Bearer token-one', 'cached within the minute');
      mock.timers.tick(61_000);
      await kc.applyToHTTPSOptions(opts as never);
      assert.equal(opts.headers!.Authorization, 'Bearer token-two', 're-read after it');
    } finally {
      mock.timers.reset();
    }
    // No server in the kubelet's kubeconfig: a clear failure, not an empty kubeconfig.
    writeFileSync(join(agent, 'kubelet.kubeconfig'), 'apiVersion: v1\n');
    const bad = spawnSync('sh', ['-c', script], { encoding: 'utf8' });
    assert.notEqual(bad.status, 0);
    assert.match(bad.stderr, /no server/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('manifests: the Dockerfile builds on Node 20 with packages Debian has, and its entry points exist', () => {
  const df = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const froms = [...df.matchAll(/^FROM (\S+)/gm)].map((m) => m[1]);
  assert.ok(froms.length >= 1 && froms.every((f) => /^node:20-/.test(f)), froms.join(', '));
  const install = /apt-get install[^\n]*((?:\n[^\n]*\\?)*?)\n &&/.exec(df);
  assert.ok(install, 'an apt-get install line');
  const pkgs = install[0].replace(/apt-get install|-y|--no-install-recommends|\\|&&/g, ' ').split(/\s+/).filter((p) => /^[a-z0-9][a-z0-9.+-]+$/.test(p));
  for (const p of ['iproute2', 'iptables', 'nftables', 'wireguard-tools', 'wireguard-go', 'graphviz', 'containernetworking-plugins']) assert.ok(pkgs.includes(p), `installs ${p}`);
  // Each package exists in this Debian's archive (the image's base is Debian 12 too).
  const policy = spawnSync('apt-cache', ['policy', ...pkgs], { encoding: 'utf8' });
  assert.equal(policy.status, 0, policy.stderr);
  for (const p of pkgs) assert.match(policy.stdout, new RegExp(`^${p.replace(/[.+]/g, '\\$&')}:\\n\\s+Installed: .*\\n\\s+Candidate: (?!\\(none\\))`, 'm'), `apt knows ${p}`);
  // /opt/bin/kg and /opt/bin/kgctl run the compiled entry points package.json names as bins.
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8'));
  for (const [bin, target] of Object.entries(pkg.bin as Record<string, string>)) {
    assert.ok(df.includes(`/opt/kg/${target}`), `${bin} → ${target}`);
    const built = new URL(`../../${target.replace(/^dist\//, '')}`, import.meta.url).pathname;
    assert.ok(existsSync(built), `${target} is built (${built})`);
  }
  for (const [f, o] of ALL) if (o.kind === 'DaemonSet' || o.kind === 'Deployment') for (const c of o.spec.template.spec.containers) if (c.command) assert.ok(['/opt/bin/kg', '/usr/bin/wireguard-go'].includes(c.command[0]), `${f}: ${c.command[0]}`);
});

/**
 * The order a cluster needs (README "Deploy and operate"): the Peer CRD before anything that
 * uses Peers (the agent checks for it at start, the webhook validates Peers), and the
 * Prometheus Operator's CRDs before podmonitor.yaml. The node policy constrains the agents'
 * writes and needs nothing first (Kubernetes 1.30+); it follows the agents here.
 */
const INSTALL_ORDER = ['crds.yaml', 'kilo-kubeadm.yaml', 'kilo-kubeadm-flannel.yaml', 'kilo-kubeadm-userspace.yaml', 'kilo-k3s.yaml', 'node-policy.yaml', 'peer-validation.yaml', 'podmonitor.yaml'];
/** What podmonitor.yaml needs first: the operator's CRD (a minimal stand-in here). */
const PODMONITOR_CRD = join(ROOT, 'test/manifests/fixtures/podmonitor-crd.yaml');

test('manifests: kubectl apply of every manifest to the API simulator in install order, then again unchanged', { timeout: 180_000 }, async (t) => {
  // No CRD preloaded: the simulator starts as a fresh cluster does.
  const srv = await startApiServer({ https: true, loadCrds: false });
  const k = kubectlFor(srv);
  t.after(async () => {
    k.cleanup();
    await srv.stop();
  });
  assert.deepEqual([...INSTALL_ORDER].sort(), YAML_FILES, 'every manifest has its place in the install order');
  const peer = { apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', metadata: { name: 'p' }, spec: { allowedIPs: ['10.5.0.1/32'], publicKey: 'GDPDUrqJ8BQVbVxJTEmdh1RvuklZIBLIk6uDj3zZd3Y=' } };
  // A kind without its CRD is refused at kubectl's REST mapping (discovery does not list it), as
  // a real API server makes it: kubectl 1.20 says "unable to recognize", later ones add
  // "ensure CRDs are installed first".
  await assert.rejects(k(['apply', '-f', '-'], { input: JSON.stringify(peer) }), /no matches for kind "Peer" in version "kilo.squat.ai\/v1alpha1"/);
  await assert.rejects(k(['apply', '-f', join(DIR, 'podmonitor.yaml')]), /no matches for kind "PodMonitor" in version "monitoring.coreos.com\/v1"/);
  for (const f of INSTALL_ORDER) {
    if (f === 'podmonitor.yaml') await k(['apply', '-f', PODMONITOR_CRD]);
    const first = await k(['apply', '-f', join(DIR, f)], { timeoutMs: 60_000 });
    const objs = load(join(DIR, f));
    assert.equal(first.stdout.trim().split('\n').length, objs.length, `${f}: ${first.stdout}`);
    for (const o of objs) {
      const ns = o.metadata.namespace ? ['-n', o.metadata.namespace] : [];
      const back = JSON.parse((await k(['get', `${o.kind.toLowerCase()}.${o.apiVersion.includes('/') ? o.apiVersion.split('/')[0] : ''}`.replace(/\.$/, ''), o.metadata.name, ...ns, '-o', 'json'])).stdout);
      assert.equal(back.metadata.name, o.metadata.name, `${f}: ${o.kind} ${o.metadata.name}`);
      if (o.kind === 'DaemonSet') assert.deepEqual(back.spec.template.spec.containers[0].args, o.spec.template.spec.containers[0].args);
    }
    const again = await k(['apply', '-f', join(DIR, f)], { timeoutMs: 60_000 });
    // A PodDisruptionBudget's selector has patch strategy "replace", so kubectl's patch for it is
    // never empty and a real server answers "configured" too; nothing else may change.
    for (const line of again.stdout.trim().split('\n')) assert.match(line, /^poddisruptionbudget\.policy\/\S+ configured$| unchanged$/, `${f}: ${line}`);
  }
  // With crds.yaml applied, the same Peer is accepted.
  assert.match((await k(['apply', '-f', '-'], { input: JSON.stringify(peer) })).stdout, /peer.kilo.squat.ai\/p created/);
  // kubectl's own dry run of an invalid object still fails (the simulator is no rubber stamp).
  await assert.rejects(k(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'apps/v1', kind: 'NoSuchKind', metadata: { name: 'x' } }) }), /NoSuchKind|no matches for kind/);
});
