# syntax=docker/dockerfile:1
#
# coedit in a container: `docker build -t coedit .` then
# `docker run -p 1234:1234 -v coedit-data:/data coedit` (or compose.yaml).
#
# No Docker engine ran where this file was written, so the image itself has never been built.
# What is exercised instead: the runtime stage runs exactly the commands test/production.test.ts
# runs against the packed tarball (unpack, `npm ci --omit=dev`, start with this
# environment, the HEALTHCHECK command, SIGTERM), and that test checks this file still has them.

# --- build: compile the server and the editor, then pack what the package ships -------------
FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json tsconfig.build.json README.md LICENSE CHANGELOG.md ./
COPY server ./server
COPY scripts ./scripts
COPY web ./web
# npm ci runs `prepare`, which builds dist/; pack skips it then (already built).
RUN npm ci --no-audit --no-fund \
 && npm pack --ignore-scripts --pack-destination /tmp \
 && mv /tmp/coedit-*.tgz /tmp/coedit.tgz

# --- runtime: the packed package on its production dependencies, as a non-root user ---------
FROM node:20-bookworm-slim
ENV NODE_ENV=production HOST=0.0.0.0 PORT=1234 DATA_DIR=/data
WORKDIR /app
COPY --from=build /tmp/coedit.tgz /src/package-lock.json /tmp/
# `prepare` builds only where the sources are (a checkout), so here it does nothing: dist/ comes
# prebuilt. The one native dependency, classic-level, finds its bundled prebuilt binary
# (linux x64 and arm64). Nothing compiles.
RUN tar -xzf /tmp/coedit.tgz -C /app --strip-components=1 \
 && cp /tmp/package-lock.json /app/ \
 && npm ci --omit=dev --no-audit --no-fund \
 && npm cache clean --force \
 && rm /tmp/coedit.tgz /tmp/package-lock.json \
 && mkdir -p /data && chown node:node /data
# `node`, uid 1000, comes with the base image.
USER node
VOLUME /data
EXPOSE 1234
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD node -e "fetch('http://127.0.0.1:' + (process.env.PORT || 1234) + '/healthz').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
# coedit stores everything received, closes clients with 1001 and exits 0 on SIGTERM. Exec
# form, so node is PID 1 and gets the signal itself (it handles SIGTERM and SIGINT).
STOPSIGNAL SIGTERM
CMD ["node", "dist/scripts/coedit.js", "serve"]
