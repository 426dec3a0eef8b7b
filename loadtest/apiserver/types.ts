// Loose shapes of the Kubernetes objects the simulator stores. The server treats objects as
// JSON documents; only metadata is typed because that is all the store interprets.
export interface ObjectMeta {
  name?: string;
  generateName?: string;
  namespace?: string;
  uid?: string;
  resourceVersion?: string;
  generation?: number;
  creationTimestamp?: string;
  deletionTimestamp?: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  managedFields?: unknown[];
  [k: string]: unknown;
}

export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
  [k: string]: unknown;
}

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

/** One served resource type (what discovery lists and the router serves). */
export interface ResourceType {
  group: string; // '' for core
  version: string;
  resource: string; // plural
  kind: string;
  listKind: string;
  singular: string;
  namespaced: boolean;
  shortNames?: string[];
  categories?: string[];
  verbs?: string[];
  /** Set for resources defined by a CustomResourceDefinition. */
  crdName?: string;
  /** Extra printer columns (CRD additionalPrinterColumns / built-in ones) for Table output. */
  columns?: { name: string; type: string; jsonPath: string; description?: string }[];
}

export function gvKey(group: string, version: string): string {
  return group === '' ? version : `${group}/${version}`;
}

export function resourceKey(t: { group: string; version: string; resource: string }): string {
  return `${gvKey(t.group, t.version)}/${t.resource}`;
}

/** The error type handlers throw; the server turns it into a metav1.Status. */
export class StatusError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: Record<string, unknown>,
    readonly headers?: Record<string, string>,
  ) {
    super(message);
  }
  toStatus(): Record<string, unknown> {
    return {
      kind: 'Status',
      apiVersion: 'v1',
      metadata: {},
      status: 'Failure',
      message: this.message,
      reason: this.reason,
      ...(this.details ? { details: this.details } : {}),
      code: this.code,
    };
  }
}

export function notFound(t: ResourceType, name: string): StatusError {
  return new StatusError(404, 'NotFound', `${t.resource}${t.group ? '.' + t.group : ''} "${name}" not found`, {
    name,
    group: t.group,
    kind: t.resource,
  });
}

export function gone(message: string): StatusError {
  return new StatusError(410, 'Expired', message);
}
