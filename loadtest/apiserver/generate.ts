// Realistic Nodes and Peers for the simulator and for load tests: Nodes look like a kubelet's
// (~10 KiB with status, images and managedFields) and carry the Kilo annotations (design §3.1).
import { createHash, generateKeyPairSync } from 'node:crypto';
import type { KubeObject } from './types.js';

export interface KeyPair {
  publicKey: string;
  privateKey: string;
}

/**
 * A WireGuard (X25519) key pair, standard base64 as `wg` prints it.
 * The keys come back DER-encoded from the generation job itself. Exporting generated KeyObjects
 * afterwards (e.g. as JWK) can deadlock on Node 20 when a GC destroys the finished generation job
 * in the middle of that export (seen here at 5,000 keys); importing raw keys instead is 4x slower.
 */
export function wireguardKeyPair(): KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('x25519', {
    publicKeyEncoding: { type: 'spki', format: 'der' },
    privateKeyEncoding: { type: 'pkcs8', format: 'der' },
  });
  const priv = Buffer.from(privateKey.subarray(privateKey.length - 32));
  priv[0] &= 248; // clamp as `wg genkey` does (X25519 clamps anyway, so the public key is unchanged)
  priv[31] = (priv[31] & 127) | 64;
  return { publicKey: publicKey.subarray(publicKey.length - 32).toString('base64'), privateKey: priv.toString('base64') };
}

function ipv4(n: number): string {
  return [(n >>> 24) & 255, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}
function parseIpv4(s: string): number {
  return s.split('.').reduce((a, o) => a * 256 + Number(o), 0);
}

export interface GenerateNodesOptions {
  count: number;
  /** Number of locations, or their names (default: one per ~100 nodes). */
  locations?: number | string[];
  namePrefix?: string;
  /** Pod CIDRs are consecutive blocks of this size from this base (default 10.64.0.0, /24). */
  podCidrBase?: string;
  podCidrPrefix?: number;
  /** Each location gets a /20 of private addresses from this base (default 172.16.0.0). */
  internalBase?: string;
  /** Public endpoints come from this base (default 198.18.0.0, the benchmarking range). */
  endpointBase?: string;
  port?: number;
  /** Add the kilo.squat.ai/* annotations (default true). */
  kiloAnnotations?: boolean;
  /** Add kubelet-like status, images and managedFields to reach ~10 KiB (default true). */
  realistic?: boolean;
  /** kilo.squat.ai/last-seen value (default: now). */
  lastSeen?: number;
  /** Mark the first node of each location as leader (kilo.squat.ai/leader). */
  leaders?: boolean;
  /** Receives each node's private key, for tests that run an agent as that node. */
  onKey?: (node: string, keys: KeyPair) => void;
  /**
   * Dual stack (design §20.2): an IPv6 pod CIDR (a /64 each, from fd45:0::/32; up to 65,535 nodes)
   * after the IPv4 one in spec.podCIDRs, and an IPv6 internal IP (a /64 per location, from fd78::/16)
   * as kilo.squat.ai/dual-stack-internal-ip, which a dual-stack kg writes on its node.
   */
  dualStack?: boolean;
}

function isoNow(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, 'Z');
}

const IMAGES = [
  'registry.k8s.io/kube-proxy:v1.30.0',
  'docker.io/squat/kilo:0.6.0',
  'registry.k8s.io/pause:3.9',
  'registry.k8s.io/coredns/coredns:v1.11.1',
  'quay.io/prometheus/node-exporter:v1.7.0',
  'docker.io/calico/node:v3.27.0',
  'registry.k8s.io/metrics-server/metrics-server:v0.7.0',
  'docker.io/library/nginx:1.25.4',
  'quay.io/cilium/cilium:v1.15.1',
  'registry.k8s.io/ingress-nginx/controller:v1.10.0',
  'docker.io/grafana/promtail:2.9.4',
  'docker.io/fluent/fluent-bit:2.2.2',
  'registry.k8s.io/csi-secrets-store/driver:v1.4.1',
  'docker.io/library/busybox:1.36',
  'quay.io/jetstack/cert-manager-controller:v1.14.3',
  'docker.io/library/redis:7.2.4',
  'docker.io/library/postgres:16.2',
  'quay.io/argoproj/argocd:v2.10.2',
  'docker.io/bitnami/kubectl:1.29.2',
  'registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.10.1',
  'docker.io/library/alpine:3.19.1',
  'quay.io/prometheus/prometheus:v2.50.1',
  'docker.io/envoyproxy/envoy:v1.29.1',
  'registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.10.0',
  'docker.io/library/python:3.12-slim',
  'docker.io/istio/proxyv2:1.21.0',
  'ghcr.io/fluxcd/source-controller:v1.2.4',
  'docker.io/library/golang:1.22',
];

function managedFields(t: string): object[] {
  const f = (o: object) => o;
  return [
    {
      manager: 'kubeadm',
      operation: 'Update',
      apiVersion: 'v1',
      time: t,
      fieldsType: 'FieldsV1',
      fieldsV1: f({ 'f:metadata': { 'f:annotations': { 'f:kubeadm.alpha.kubernetes.io/cri-socket': {} }, 'f:labels': { 'f:node-role.kubernetes.io/worker': {} } } }),
    },
    {
      manager: 'kube-controller-manager',
      operation: 'Update',
      apiVersion: 'v1',
      time: t,
      fieldsType: 'FieldsV1',
      fieldsV1: f({ 'f:metadata': { 'f:annotations': { 'f:node.alpha.kubernetes.io/ttl': {} } }, 'f:spec': { 'f:podCIDR': {}, 'f:podCIDRs': { '.': {}, 'v:"10.64.0.0/24"': {} } } }),
    },
    {
      manager: 'kubelet',
      operation: 'Update',
      apiVersion: 'v1',
      time: t,
      fieldsType: 'FieldsV1',
      fieldsV1: f({
        'f:metadata': {
          'f:annotations': { '.': {}, 'f:volumes.kubernetes.io/controller-managed-attach-detach': {} },
          'f:labels': { '.': {}, 'f:beta.kubernetes.io/arch': {}, 'f:beta.kubernetes.io/os': {}, 'f:kubernetes.io/arch': {}, 'f:kubernetes.io/hostname': {}, 'f:kubernetes.io/os': {} },
        },
        'f:spec': { 'f:providerID': {} },
      }),
    },
    {
      manager: 'kubelet',
      operation: 'Update',
      apiVersion: 'v1',
      time: t,
      fieldsType: 'FieldsV1',
      subresource: 'status',
      fieldsV1: f({
        'f:status': {
          'f:allocatable': { 'f:cpu': {}, 'f:ephemeral-storage': {}, 'f:memory': {}, 'f:pods': {} },
          'f:capacity': { 'f:cpu': {}, 'f:ephemeral-storage': {}, 'f:memory': {}, 'f:pods': {} },
          'f:conditions': Object.fromEntries(
            ['DiskPressure', 'MemoryPressure', 'PIDPressure', 'Ready'].map((c) => [
              `k:{"type":"${c}"}`,
              { 'f:lastHeartbeatTime': {}, 'f:lastTransitionTime': {}, 'f:message': {}, 'f:reason': {}, 'f:status': {} },
            ]),
          ),
          'f:daemonEndpoints': { 'f:kubeletEndpoint': { 'f:Port': {} } },
          'f:images': {},
          'f:nodeInfo': { 'f:architecture': {}, 'f:bootID': {}, 'f:containerRuntimeVersion': {}, 'f:kernelVersion': {}, 'f:kubeProxyVersion': {}, 'f:kubeletVersion': {}, 'f:machineID': {}, 'f:operatingSystem': {}, 'f:osImage': {}, 'f:systemUUID': {} },
        },
      }),
    },
    {
      manager: 'kg',
      operation: 'Update',
      apiVersion: 'v1',
      time: t,
      fieldsType: 'FieldsV1',
      fieldsV1: f({
        'f:metadata': {
          'f:annotations': Object.fromEntries(
            ['cni-compatibility-ip', 'discovered-endpoints', 'endpoint', 'granularity', 'internal-ip', 'key', 'last-seen', 'wireguard-ip'].map((k) => [`f:kilo.squat.ai/${k}`, {}]),
          ),
        },
      }),
    },
  ];
}

export function locationNames(locations: number | string[] | undefined, count: number): string[] {
  if (Array.isArray(locations)) return locations;
  const n = locations ?? Math.max(1, Math.ceil(count / 100));
  return Array.from({ length: n }, (_, i) => `loc-${String(i).padStart(3, '0')}`);
}

/** The index of the location node `i` of `count` is in: contiguous blocks, like zones filled in order. */
export function locationIndex(i: number, locations: number, count: number): number {
  return Math.min(locations - 1, Math.floor((i * locations) / count));
}

export function generateNodes(o: GenerateNodesOptions): KubeObject[] {
  const locs = locationNames(o.locations, o.count);
  const prefix = o.namePrefix ?? 'node';
  const podBase = parseIpv4(o.podCidrBase ?? '10.64.0.0');
  const podPrefix = o.podCidrPrefix ?? 24;
  const podSize = 2 ** (32 - podPrefix);
  const internalBase = parseIpv4(o.internalBase ?? '172.16.0.0');
  const endpointBase = parseIpv4(o.endpointBase ?? '198.18.0.0');
  const port = o.port ?? 51820;
  const lastSeen = o.lastSeen ?? Math.floor(Date.now() / 1000);
  const now = isoNow();
  const width = Math.max(5, String(o.count).length);
  const perLoc = new Map<number, number>();
  const nodes: KubeObject[] = [];
  for (let i = 0; i < o.count; i++) {
    const name = `${prefix}-${String(i).padStart(width, '0')}`;
    const li = locationIndex(i, locs.length, o.count);
    const idx = perLoc.get(li) ?? 0;
    perLoc.set(li, idx + 1);
    if (idx >= 4094) throw new Error('more than 4094 nodes in one location');
    if (o.dualStack && i >= 0xffff) throw new Error('more than 65,535 dual-stack nodes');
    const internal = ipv4(internalBase + li * 4096 + idx + 1);
    const podCidr = `${ipv4(podBase + i * podSize)}/${podPrefix}`;
    const endpoint = ipv4(endpointBase + i + 1);
    const labels: Record<string, string> = {
      'beta.kubernetes.io/arch': 'amd64',
      'beta.kubernetes.io/os': 'linux',
      'kubernetes.io/arch': 'amd64',
      'kubernetes.io/hostname': name,
      'kubernetes.io/os': 'linux',
      'node.kubernetes.io/instance-type': 'm5.xlarge',
      'topology.kubernetes.io/region': locs[li],
      'topology.kubernetes.io/zone': `${locs[li]}-a`,
    };
    const annotations: Record<string, string> = {
      'node.alpha.kubernetes.io/ttl': '0',
      'volumes.kubernetes.io/controller-managed-attach-detach': 'true',
    };
    if (o.kiloAnnotations ?? true) {
      const keys = wireguardKeyPair();
      o.onKey?.(name, keys);
      Object.assign(annotations, {
        'kilo.squat.ai/key': keys.publicKey,
        'kilo.squat.ai/endpoint': `${endpoint}:${port}`,
        'kilo.squat.ai/internal-ip': `${internal}/20`,
        'kilo.squat.ai/last-seen': String(lastSeen),
        'kilo.squat.ai/wireguard-ip': '',
        'kilo.squat.ai/discovered-endpoints': '',
        'kilo.squat.ai/granularity': 'location',
        'kilo.squat.ai/cni-compatibility-ip': '',
      });
      if (o.leaders && idx === 0) annotations['kilo.squat.ai/leader'] = 'true';
      if (o.dualStack) annotations['kilo.squat.ai/dual-stack-internal-ip'] = `fd78:${(li + 1).toString(16)}::${(idx + 1).toString(16)}/64`;
    }
    const node: KubeObject = {
      apiVersion: 'v1',
      kind: 'Node',
      metadata: { name, labels, annotations },
      spec: { podCIDR: podCidr, podCIDRs: o.dualStack ? [podCidr, `fd45:0:${(i + 1).toString(16)}::/64`] : [podCidr], providerID: `kgsim://${locs[li]}/${name}` },
    };
    if (o.realistic ?? true) {
      const h = createHash('sha256').update(name).digest('hex');
      node.metadata.annotations!['kubeadm.alpha.kubernetes.io/cri-socket'] = 'unix:///run/containerd/containerd.sock';
      node.metadata.managedFields = managedFields(now);
      const cond = (type: string, status: string, reason: string, message: string) => ({ type, status, lastHeartbeatTime: now, lastTransitionTime: now, reason, message });
      node.status = {
        capacity: { cpu: '4', 'ephemeral-storage': '101430960Ki', 'hugepages-1Gi': '0', 'hugepages-2Mi': '0', memory: '16069820Ki', pods: '110' },
        allocatable: { cpu: '4', 'ephemeral-storage': '93478772582', 'hugepages-1Gi': '0', 'hugepages-2Mi': '0', memory: '15967420Ki', pods: '110' },
        conditions: [
          cond('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
          cond('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
          cond('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
          cond('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status. AppArmor enabled'),
        ],
        addresses: [
          { type: 'InternalIP', address: internal },
          { type: 'ExternalIP', address: endpoint },
          { type: 'Hostname', address: name },
        ],
        daemonEndpoints: { kubeletEndpoint: { Port: 10250 } },
        nodeInfo: {
          machineID: h.slice(0, 32),
          systemUUID: `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`,
          bootID: `${h.slice(32, 40)}-${h.slice(40, 44)}-${h.slice(44, 48)}-${h.slice(48, 52)}-${h.slice(52, 64)}`,
          kernelVersion: '6.1.0-18-cloud-amd64',
          osImage: 'Debian GNU/Linux 12 (bookworm)',
          containerRuntimeVersion: 'containerd://1.7.13',
          kubeletVersion: 'v1.30.0',
          kubeProxyVersion: 'v1.30.0',
          operatingSystem: 'linux',
          architecture: 'amd64',
        },
        images: IMAGES.map((img, k) => {
          const d = createHash('sha256').update(img + k).digest('hex');
          const repo = img.split(':')[0];
          return { names: [`${repo}@sha256:${d}`, img], sizeBytes: 10_000_000 + ((k * 7_919_993) % 90_000_000) };
        }),
      };
    }
    nodes.push(node);
  }
  return nodes;
}

export interface GeneratePeersOptions {
  count: number;
  namePrefix?: string;
  /** Each peer gets one /32 from this base (default 10.5.0.1). */
  allowedBase?: string;
  /** Give every peer an endpoint (default: every other one). */
  endpoints?: boolean;
  persistentKeepalive?: number;
  onKey?: (peer: string, keys: KeyPair) => void;
}

export function generatePeers(o: GeneratePeersOptions): KubeObject[] {
  const base = parseIpv4(o.allowedBase ?? '10.5.0.1');
  const width = Math.max(5, String(o.count).length);
  const out: KubeObject[] = [];
  for (let i = 0; i < o.count; i++) {
    const name = `${o.namePrefix ?? 'peer'}-${String(i).padStart(width, '0')}`;
    const keys = wireguardKeyPair();
    o.onKey?.(name, keys);
    const spec: Record<string, unknown> = { allowedIPs: [`${ipv4(base + i)}/32`], publicKey: keys.publicKey, persistentKeepalive: o.persistentKeepalive ?? 25 };
    if (o.endpoints ?? i % 2 === 0) spec.endpoint = { dnsOrIP: { ip: ipv4(parseIpv4('198.19.0.1') + i) }, port: 51820 };
    out.push({ apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', metadata: { name }, spec });
  }
  return out;
}
