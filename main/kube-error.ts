// An API error with its HTTP status. Kept apart from kube.ts so that the modules which only
// classify errors (the reflector, the agent) do not load the Kubernetes client library with it.
export class KubeError extends Error {
  constructor(message: string, readonly status: number, readonly body: unknown = null, readonly retryAfterMs: number | null = null) {
    super(message);
  }
}
