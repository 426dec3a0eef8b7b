// What the agent's process needs in its environment, set before Node starts (the image's
// Dockerfile ENV, the DaemonSet manifests' env, bench/agent.ts; test/manifests/agent-env checks
// that they agree). Neither can be set from inside: glibc reads MALLOC_ARENA_MAX when malloc
// starts, and V8 sizes the main isolate's young generation when it creates the isolate. Node has
// no exec(2), so re-executing itself would leave a second Node process resident.
//   MALLOC_ARENA_MAX=2: glibc gives each thread that allocates its own arena (up to 8 per core),
//     each keeping its freed memory; the agent's threads (main, planner, I/O, libuv's pool) share two.
//   MALLOC_MMAP_THRESHOLD_=131072: glibc's default threshold, fixed. Left dynamic, it rises to the
//     size of the largest block freed (a kernel read-back's output, up to 32 MiB), and blocks below
//     it then come from the arenas, whose freed memory stays in RSS: ~8 MB at 5,000 nodes.
//   --max-semi-space-size=2: the main thread's young generation at 2 MiB semi-spaces (V8 grows
//     them to 16 MiB and keeps them); the worker threads get the same from their resourceLimits.
export const AGENT_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  MALLOC_MMAP_THRESHOLD_: '131072',
  NODE_OPTIONS: '--max-semi-space-size=2',
};
