# The kg image: kg (agent and `kg webhook`) and kgctl on Node 20, with the tools kg drives
# (spec §15.4): iproute2, iptables and ip6tables (legacy and nft; kg detects which one the host
# uses), wireguard-tools, wireguard-go (userspace WireGuard: kg falls back to it when the kernel
# has no WireGuard, and the *-userspace manifests run it as a sidecar), Graphviz for /graph, and
# the CNI plugins that the install-cni init container copies to the host.
#   docker build -t kg:0.1.0 .
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY . .
# The whole tree is type-checked as in CI and the agent bundled (scripts/bundle.mjs); the tests are
# left out of the image.
RUN npm run build && rm -rf dist/test && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      iproute2 iptables nftables ipset wireguard-tools wireguard-go graphviz fonts-dejavu-core \
      containernetworking-plugins ca-certificates \
 && mkdir -p /opt/cni/bin /opt/bin \
 && cp /usr/lib/cni/bridge /usr/lib/cni/host-local /usr/lib/cni/loopback /usr/lib/cni/portmap /opt/cni/bin/ \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/kg
COPY --from=build /src/package.json ./package.json
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
RUN printf '#!/bin/sh\nexec node /opt/kg/dist/bundle/cli.js "$@"\n' > /opt/bin/kg \
 && printf '#!/bin/sh\nexec node /opt/kg/dist/main/kgctl.js "$@"\n' > /opt/bin/kgctl \
 && chmod 0755 /opt/bin/kg /opt/bin/kgctl
# The agent's memory settings (main/agent/process-env.ts, also in the manifests): two malloc arenas
# for all its threads, large blocks always mmap'd (given back when freed), and the main thread's
# V8 young generation at 2 MiB semi-spaces.
ENV PATH=/opt/bin:$PATH NODE_ENV=production MALLOC_ARENA_MAX=2 MALLOC_MMAP_THRESHOLD_=131072 NODE_OPTIONS=--max-semi-space-size=2
ENTRYPOINT ["/opt/bin/kg"]
