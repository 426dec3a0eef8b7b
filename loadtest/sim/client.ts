// The load test's end of the IPC channel to its simulator process (sim/driver.ts): one call per
// command, answered by id, each bounded by a timeout.
import type { Mesh } from '../mesh/harness.js';
import type { SimCommand, SimReply } from './protocol.js';

export class Sim {
  private id = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  constructor(private readonly mesh: Mesh) {
    mesh.api!.on('message', (raw) => {
      const r = raw as SimReply;
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.ok) p.resolve(r.value);
      else p.reject(new Error(r.error));
    });
  }

  call<T = { at: number }>(c: SimCommand, timeoutMs = 60_000): Promise<T> {
    const id = ++this.id;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`simulator: ${c.op} timed out`));
      }, timeoutMs);
      this.pending.set(id, { resolve: (v) => (clearTimeout(t), resolve(v as T)), reject: (e) => (clearTimeout(t), reject(e)) });
      this.mesh.api!.send({ ...c, id });
    });
  }
}
