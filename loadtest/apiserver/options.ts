// The command-line options every simulator process takes (cli.ts, and the load test's
// sim/driver.ts, which adds its own), in node:util parseArgs form.
export const SIMULATOR_OPTIONS = {
  nodes: { type: 'string', default: '0' },
  peers: { type: 'string', default: '0' },
  locations: { type: 'string' },
  https: { type: 'boolean', default: false },
  host: { type: 'string', default: '127.0.0.1' },
  port: { type: 'string', default: '0' },
  kubeconfig: { type: 'string' },
  'history-size': { type: 'string' },
} as const;
