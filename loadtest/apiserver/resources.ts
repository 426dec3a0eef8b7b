// The built-in resource types the simulator serves. Custom resources are added at run time from
// CustomResourceDefinitions (see store.ts), as on a real server.
import type { ResourceType } from './types.js';

const RW = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

function t(group: string, version: string, resource: string, kind: string, namespaced: boolean, extra: Partial<ResourceType> = {}): ResourceType {
  return { group, version, resource, kind, listKind: `${kind}List`, singular: kind.toLowerCase(), namespaced, verbs: RW, ...extra };
}

export const BUILTIN_TYPES: ResourceType[] = [
  t('', 'v1', 'nodes', 'Node', false, {
    shortNames: ['no'],
    columns: [
      { name: 'Status', type: 'string', jsonPath: '.status.conditions[?(@.type=="Ready")].status' },
      { name: 'Version', type: 'string', jsonPath: '.status.nodeInfo.kubeletVersion' },
    ],
  }),
  t('', 'v1', 'namespaces', 'Namespace', false, { shortNames: ['ns'], columns: [{ name: 'Status', type: 'string', jsonPath: '.status.phase' }] }),
  t('', 'v1', 'serviceaccounts', 'ServiceAccount', true, { shortNames: ['sa'] }),
  t('', 'v1', 'configmaps', 'ConfigMap', true, { shortNames: ['cm'] }),
  t('apps', 'v1', 'daemonsets', 'DaemonSet', true, { shortNames: ['ds'], categories: ['all'] }),
  t('coordination.k8s.io', 'v1', 'leases', 'Lease', true),
  t('rbac.authorization.k8s.io', 'v1', 'clusterroles', 'ClusterRole', false),
  t('rbac.authorization.k8s.io', 'v1', 'clusterrolebindings', 'ClusterRoleBinding', false),
  t('apiextensions.k8s.io', 'v1', 'customresourcedefinitions', 'CustomResourceDefinition', false, {
    shortNames: ['crd', 'crds'],
    categories: ['api-extensions'],
  }),
  // Stored-only kinds that kg's deployment manifests (manifests/) hold, so that `kubectl apply`
  // of every manifest runs against the simulator; nothing acts on them.
  t('', 'v1', 'services', 'Service', true, { shortNames: ['svc'], categories: ['all'] }),
  t('', 'v1', 'secrets', 'Secret', true),
  t('apps', 'v1', 'deployments', 'Deployment', true, { shortNames: ['deploy'], categories: ['all'] }),
  t('batch', 'v1', 'jobs', 'Job', true, { categories: ['all'] }),
  t('policy', 'v1', 'poddisruptionbudgets', 'PodDisruptionBudget', true, { shortNames: ['pdb'] }),
  t('rbac.authorization.k8s.io', 'v1', 'roles', 'Role', true),
  t('rbac.authorization.k8s.io', 'v1', 'rolebindings', 'RoleBinding', true),
  t('admissionregistration.k8s.io', 'v1', 'validatingwebhookconfigurations', 'ValidatingWebhookConfiguration', false),
  t('admissionregistration.k8s.io', 'v1', 'validatingadmissionpolicies', 'ValidatingAdmissionPolicy', false),
  t('admissionregistration.k8s.io', 'v1', 'validatingadmissionpolicybindings', 'ValidatingAdmissionPolicyBinding', false),
  // No custom kinds here (not even the Prometheus Operator's PodMonitor): as on a real server, a
  // kind exists only once its CustomResourceDefinition does, so discovery does not list it and
  // kubectl refuses it ("no matches for kind").
];

export const INITIAL_NAMESPACES = ['default', 'kube-system', 'kube-public', 'kube-node-lease'];
