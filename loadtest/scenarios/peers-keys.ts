// peers-keys: Peers added and removed (a route each on every agent), and every fifth step a
// location leader rotates its WireGuard key (the agents' devices swap the peer).
import { findLeader } from '../../plan/topology.js';
import { locName, sleep, type LoadRun, type PhaseTally } from '../load-run.js';
import { runPhase } from '../phase.js';

/** Unique addresses for the Peers the load test adds. */
const peerIP = (k: number) => `10.6.${(k >> 8) & 255}.${k & 255}/32`;

async function peersAndKeys(run: LoadRun, t: PhaseTally): Promise<number> {
  const { o, sim, monitors } = run;
  const cluster = await run.cluster();
  let changes = 0;
  const start = Date.now();
  let step = 0;
  while (Date.now() - start < o.durationS * 1000) {
    if (step % 5 === 4) {
      // A location leader rotates its key: the agents' devices swap the peer.
      const loc = locName(step % o.locations);
      const members = cluster.nodes.filter((n) => n.location === loc);
      const leader = members.length ? members[findLeader(members)] : null;
      if (leader) {
        const r = await sim.call<{ at: number; publicKey: string }>({ op: 'rotateKey', name: leader.name });
        await run.expectWgKey('peers-keys', 'leader key rotated', r.at, r.publicKey, t);
        changes++;
      }
    } else {
      const k = run.peerK++;
      const ip = peerIP(k);
      for (const m of monitors) m.clear('add', ip), m.clear('del', ip);
      const r = await sim.call({ op: 'addPeer', name: `lt-peer-${k}`, allowedIP: ip });
      await run.expectRoute('peers-keys', 'Peer added', r.at, 'add', ip, t);
      const d = await sim.call({ op: 'deletePeer', name: `lt-peer-${k}` });
      await run.expectRoute('peers-keys', 'Peer removed', d.at, 'del', ip, t);
      changes += 2;
    }
    step++;
    await sleep(500);
  }
  return changes;
}

export async function peersKeys(run: LoadRun): Promise<void> {
  await runPhase(run, 'peers-keys', run.o.heartbeat, (t) => peersAndKeys(run, t));
}
