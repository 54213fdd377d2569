# runtrail's server as an image: `docker build -t runtrail:local .`, then
#   docker run -p 4319:4319 -v runtrail-data:/data runtrail:local
# serves the JSON API, /metrics and OTLP/HTTP (POST /v1/traces) on port 4319, the DuckDB store in
# the volume at /data. Without tokens it answers anyone (hence --insecure, to listen on 0.0.0.0):
# set RUNTRAIL_TOKENS or RUNTRAIL_TOKENS_FILE for anything shared (docs/server.md).
# Any other runtrail command works too, e.g. with no server on the volume:
#   docker run --rm -v runtrail-data:/data runtrail:local stats

# ---- build: every dependency, then TypeScript to dist/ ----
FROM node:20.19.5-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `prepare` would run the build before the sources are copied; it is the next
# step. No dependency needs an install script (DuckDB's bindings come prebuilt in a package).
# `npm install` rather than `npm ci`: the lock file pins every version, but lists the prebuilt
# DuckDB and Biome packages of the platform it was made on only, and `npm ci` refuses a lock
# file without those of every platform; `npm install` adds the image's own from the registry.
RUN npm install --ignore-scripts --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && rm -f dist/.tsbuildinfo

# ---- runtime: production dependencies and dist/ only, as the image's non-root `node` user ----
FROM node:20.19.5-bookworm-slim AS runtime
ENV NODE_ENV=production \
    RUNTRAIL_DB=/data/runs.duckdb
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm install --omit=dev --ignore-scripts --no-audit --no-fund && npm cache clean --force
COPY --from=build /app/dist ./dist
# The store, its write-ahead log, spool and claim file live in /data: the only place written.
RUN mkdir -p /data && chown node:node /data
VOLUME ["/data"]
USER node
EXPOSE 4319
# Ready once the store is open and writable. The slim image has no curl: node's fetch asks.
HEALTHCHECK --interval=10s --timeout=5s --start-period=30s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:4319/readyz',{signal:AbortSignal.timeout(4000)}).then((r)=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["node", "/app/dist/cli/main.js"]
CMD ["serve", "--host", "0.0.0.0", "--port", "4319", "--insecure"]
