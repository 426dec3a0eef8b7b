// An API error with its HTTP status. Kept apart from kube.ts so that the modules which only
// classify errors (the reflector, the agent) do not load the Kubernetes client library with it.
export class KubeError extends Error {
  constructor(message: string, readonly status: number, readonly body: unknown = null, readonly retryAfterMs: number | null = null) {
    super(message);
  }
}

/** Why a list or watch response could not be used: a fixed set (the values of a metric label). */
export const INVALID_REASONS = [
  'line_too_long', 'body_too_large', 'not_json', 'not_object', 'unknown_type', 'no_name', 'no_resource_version', 'bad_status',
] as const;
export type InvalidReason = (typeof INVALID_REASONS)[number];

/**
 * A response that is not what the API promises: too large, or a line or body that does not
 * decode. The message names the reason and the size, never the content.
 */
export class InvalidResponseError extends Error {
  constructor(message: string, readonly reason: InvalidReason, readonly bytes: number) {
    super(message);
  }
}
