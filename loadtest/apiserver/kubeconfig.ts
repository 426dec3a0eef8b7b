// Writes a kubeconfig that kubectl, client-go and @kubernetes/client-node all accept.
import { stringify } from 'yaml';

export interface KubeconfigInput {
  server: string;
  caCertPem?: string;
  token?: string;
  clientCertPem?: string;
  clientKeyPem?: string;
  name?: string;
}

const b64 = (s: string) => Buffer.from(s).toString('base64');

export function renderKubeconfig(k: KubeconfigInput): string {
  const name = k.name ?? 'kg-sim';
  const user: Record<string, string> = {};
  if (k.token) user.token = k.token;
  if (k.clientCertPem && k.clientKeyPem) {
    user['client-certificate-data'] = b64(k.clientCertPem);
    user['client-key-data'] = b64(k.clientKeyPem);
  }
  return stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [
      {
        name,
        cluster: {
          server: k.server,
          ...(k.caCertPem ? { 'certificate-authority-data': b64(k.caCertPem) } : {}),
          // @kubernetes/client-node refuses plain http:// unless this is set; kubectl ignores it there.
          ...(k.server.startsWith('http://') ? { 'insecure-skip-tls-verify': true } : {}),
        },
      },
    ],
    users: [{ name: `${name}-admin`, user }],
    contexts: [{ name, context: { cluster: name, user: `${name}-admin` } }],
    'current-context': name,
    preferences: {},
  });
}
