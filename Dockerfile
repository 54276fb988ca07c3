# syntax=docker/dockerfile:1
#
# collection-hub image. One image, three roles:
#   docker run -p 3000:3000 -v ./hub.yaml:/app/config/hub.yaml:ro -e … collection-hub   # all: HTTP + workers (embedded PGlite under /app/data)
#   docker run collection-hub api                      # HTTP only  } split roles need DATABASE_URL and
#   docker run collection-hub worker                   # workers    } REDIS_URL (else each does all the work)
#
# Configuration (contract §7) is required: mount it at /app/config/hub.yaml
# (-v ./hub.yaml:/app/config/hub.yaml:ro) or point HUB_CONFIG at a mounted file. The image holds no
# example to fall back to, and its entry point passes --config-required: without a config the
# container exits at once saying so. Secrets come from the environment through `${NAME}` in that
# file (no defaults); a missing, placeholder, published or too-short secret stops start-up naming the
# key. HUB_HOST=0.0.0.0 is set so a config written from the example (`host: ${HUB_HOST:-127.0.0.1}`)
# listens on the container's interface. The embedded database lives in /app/data: mount a volume
# there (-v hubdata:/app/data) to keep it across containers.
#
# Layout: tsc compiles to dist/src, dist/connectors…; files read at run time sit where the compiled
# code looks for them — src/store/migrate.ts reads `${__dirname}/migrations` (dist/src/store/migrations)
# and src/mappings/load.ts reads `${__dirname}/../../mappings` (dist/mappings).

ARG NODE_IMAGE=node:20-bookworm-slim

# ---- build: full dependencies, TypeScript → dist/ ------------------------------------------------
FROM ${NODE_IMAGE} AS build
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
COPY connectors ./connectors
COPY sim ./sim
COPY scripts ./scripts
RUN npm run build

# ---- production dependencies only (no tsx, no TypeScript: the image runs the compiled JS) ----------
FROM ${NODE_IMAGE} AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund && npm cache clean --force

# ---- runtime ----------------------------------------------------------------------------------------
FROM ${NODE_IMAGE} AS runtime
ENV NODE_ENV=production
ENV HUB_HOST=0.0.0.0
WORKDIR /app
# Code and dependencies stay root-owned (read-only for the process); only the data directory is writable.
COPY --from=deps /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY src/store/migrations ./dist/src/store/migrations
COPY src/dashboard/public ./dist/src/dashboard/public
COPY mappings ./dist/mappings
COPY package.json ./
RUN mkdir -p /app/data /app/config && chown node:node /app/data
USER node
EXPOSE 3000
# /healthz answers while the process is up. The worker role serves no HTTP, so for it the check only
# confirms the container runs (PID 1 is `node dist/src/main.js --config-required worker`).
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "try{if(require('fs').readFileSync('/proc/1/cmdline','utf8').split('\\0').includes('worker'))process.exit(0)}catch{}fetch('http://127.0.0.1:'+(process.env.PORT||3000)+'/healthz',{signal:AbortSignal.timeout(4000)}).then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "dist/src/main.js", "--config-required"]
CMD ["all"]
