// The command-line flags every simulator process takes (cli.ts, and the load test's
// sim/driver.ts, which adds its own). Optional values default to '' (not given).
import type { FlagDef } from '../../main/flags.js';

export const SIMULATOR_FLAGS: FlagDef[] = [
  { name: 'nodes', type: 'string', default: '0', usage: 'Generated nodes.' },
  { name: 'peers', type: 'string', default: '0', usage: 'Generated Peers.' },
  { name: 'locations', type: 'string', default: '', usage: 'Locations the nodes are spread over (default: the generator\'s).' },
  { name: 'https', type: 'bool', default: false, usage: 'Serve HTTPS (with a token and an admin client certificate).' },
  { name: 'host', type: 'string', default: '127.0.0.1', usage: 'Address to listen on.' },
  { name: 'port', type: 'string', default: '0', usage: 'Port to listen on (0: any free port).' },
  { name: 'kubeconfig', type: 'string', default: '', usage: 'Write a kubeconfig for the simulator to this file.' },
  { name: 'history-size', type: 'string', default: '', usage: 'Watch events kept for resuming watches (default: the store\'s).' },
];

export const HELP_FLAG: FlagDef = { name: 'help', short: 'h', type: 'bool', default: false, usage: 'Print this help.' };
