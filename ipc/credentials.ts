// What the credentials worker (workers/credentials-worker.ts) hands the main thread: the API
// server's address, TLS material and request headers, as @kubernetes/client-node resolved them
// from a kubeconfig, the in-cluster service account or an exec plugin. Plain data (structured clone).

export interface ApiCredentials {
  /** The API server URL (http: or https:). */
  server: string;
  ca: Uint8Array | null;
  cert: Uint8Array | null;
  key: Uint8Array | null;
  servername: string | null;
  skipTLSVerify: boolean;
  /** Authorization (Bearer or Basic) and impersonation headers. */
  headers: Record<string, string>;
  /** When the token stops being valid (an exec plugin's expirationTimestamp), if known. */
  expiresAtMs: number | null;
  /** A token file to re-read every minute (in-cluster service account, `tokenFile`), as client-go does. */
  tokenFile: string | null;
}

export type CredentialsReply = { ok: true; credentials: ApiCredentials } | { ok: false; error: string };
