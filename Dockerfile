# m3serve container image.
#   docker build -t m3serve:0.1.0 .
#   docker run -p 50051:50051 -p 9464:9464 -v /data/store:/data/store:ro m3serve:0.1.0 --db /data/store
# The same image runs the ingest Job (m3serve-admin) and the client CLI.

# --- build: compile Release and run the unit tests ------------------------------
FROM debian:bookworm AS build
ENV DEBIAN_FRONTEND=noninteractive
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN M3SERVE_DEPS=build /tmp/install-deps.sh && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN BUILD_TYPE=Release ./scripts/build.sh \
 && (cd build && ctest --output-on-failure -LE integration) \
 && cmake --install build --prefix /opt/m3serve

# --- runtime: bookworm-slim with only the shared libraries the binaries need -----
# deploy/check_runtime_libs.py (run by ctest) fails when this list misses one.
FROM debian:bookworm-slim AS runtime
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libabsl20220623 libgrpc++1.51 libprotobuf32 libssl3 \
      librocksdb7.8 libsimdjson14 libxxhash0 \
      libopencv-core406 libopencv-imgproc406 libopencv-imgcodecs406 \
      libprometheus-cpp-core1.0 libcivetweb1 \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --system --gid 10001 m3serve \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --shell /usr/sbin/nologin m3serve
COPY --from=build /opt/m3serve/bin/ /usr/local/bin/
COPY --from=build /opt/m3serve/share/m3serve/ /usr/local/share/m3serve/
ENV M3SERVE_TASK_METADATA=/usr/local/share/m3serve/m3it_tasks.json
USER 10001:10001
# gRPC (DatasetService, health, reflection); HTTP: Prometheus /metrics and the dataset browser.
EXPOSE 50051 9464
ENTRYPOINT ["/usr/local/bin/m3serve-server"]
CMD ["--db", "/data/store", "--listen", "0.0.0.0:50051", "--http-listen", "0.0.0.0:9464"]
