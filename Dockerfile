# m3serve container image.
#   docker build -t m3serve:0.1.0 .
#   docker run --stop-timeout 30 -p 50051:50051 -p 9464:9464 -v /srv/m3serve:/data:ro m3serve:0.1.0 --db /data
# The same image runs the ingest Job (m3serve-admin) and the client CLI.
# scripts/test-image.sh builds this image and runs it as a user would.

# --- build: compile Release, run the unit tests, collect the runtime libraries ---
FROM debian:bookworm AS build
ENV DEBIAN_FRONTEND=noninteractive
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN M3SERVE_DEPS=build /tmp/install-deps.sh && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN BUILD_TYPE=Release ./scripts/build.sh \
 && (cd build && ctest --output-on-failure -LE integration) \
 && cmake --install build --prefix /opt/m3serve \
 && deploy/runtime_libs.sh /opt/m3serve-libs /opt/m3serve/bin/m3serve-server /opt/m3serve/bin/m3serve-admin \
      /opt/m3serve/bin/m3serve-client /opt/m3serve/lib/m3serve/m3serve-image-codecs.so

# --- runtime: bookworm-slim plus only the shared libraries the binaries load -----
FROM debian:bookworm-slim AS runtime
COPY --from=build /opt/m3serve-libs/ /usr/local/lib/m3serve/
# The admin tool's image codec plugin, where it looks: <bin>/../lib/m3serve.
COPY --from=build /opt/m3serve/lib/m3serve/m3serve-image-codecs.so /usr/local/lib/m3serve/
COPY --from=build /opt/m3serve/bin/m3serve-server /opt/m3serve/bin/m3serve-admin /opt/m3serve/bin/m3serve-client \
     /usr/local/bin/
COPY --from=build /opt/m3serve/share/m3serve/ /usr/local/share/m3serve/
# The runtime-library check, here in the build: every binary finds every
# library it needs in this stage, and runs.
RUN echo /usr/local/lib/m3serve > /etc/ld.so.conf.d/m3serve.conf && ldconfig \
 && ! ldd /usr/local/bin/m3serve-server /usr/local/bin/m3serve-admin /usr/local/bin/m3serve-client \
        /usr/local/lib/m3serve/m3serve-image-codecs.so | grep "not found" \
 && m3serve-server --help > /dev/null && m3serve-admin --help > /dev/null && m3serve-client --help > /dev/null \
 && groupadd --system --gid 10001 m3serve \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin m3serve
ENV M3SERVE_TASK_METADATA=/usr/local/share/m3serve/m3it_tasks.json
USER 10001:10001
# gRPC (DatasetService, health, reflection); HTTP: Prometheus /metrics and the dataset browser.
EXPOSE 50051 9464
# SIGTERM drains streams for --drain-seconds (20 s): stop with a longer timeout
# (docker stop -t 30, docker run --stop-timeout 30; Kubernetes: the grace period).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/m3serve-server"]
CMD ["--db", "/data", "--listen", "0.0.0.0:50051", "--http-listen", "0.0.0.0:9464"]
