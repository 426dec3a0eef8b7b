// What the agent's process needs in its environment, set before Node starts (the image's
// Dockerfile ENV, the DaemonSet manifests' env, bench/agent.ts; test/manifests/agent-env checks
// that they agree). Neither can be set from inside: glibc reads MALLOC_ARENA_MAX when malloc
// starts, and V8 sizes the main isolate's young generation when it creates the isolate. Node has
// no exec(2), so re-executing itself would leave a second Node process resident.
//   MALLOC_ARENA_MAX=2: glibc gives each thread that allocates its own arena (up to 8 per core),
//     each keeping its freed memory; the agent's threads (main, planner, I/O, libuv's pool) share two.
//   --max-semi-space-size=2: the main thread's young generation at 2 MiB semi-spaces (V8 grows
//     them to 16 MiB and keeps them); the worker threads get the same from their resourceLimits.
export const AGENT_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  NODE_OPTIONS: '--max-semi-space-size=2',
};
