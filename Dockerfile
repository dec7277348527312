# m3serve container image: build stage on debian:bookworm, runtime on bookworm-slim.
#   docker build -t m3serve .
# The deployment issue extends this with the server entrypoint, ports and probes.

FROM debian:bookworm AS build
ENV DEBIAN_FRONTEND=noninteractive
COPY scripts/install-deps.sh /tmp/install-deps.sh
RUN /tmp/install-deps.sh && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN BUILD_TYPE=Release ./scripts/build.sh \
 && (cd build && ctest --output-on-failure -E 'Integration') \
 && cmake --install build --prefix /opt/m3serve

FROM debian:bookworm-slim AS runtime
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libabsl20220623 librocksdb7.8 libsimdjson14 libxxhash0 \
      libopencv-core406 libopencv-imgproc406 libopencv-imgcodecs406 \
      libgrpc++1.51 libprotobuf32 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --no-create-home --shell /usr/sbin/nologin m3serve
COPY --from=build /opt/m3serve /opt/m3serve
ENV PATH=/opt/m3serve/bin:$PATH
USER 10001
ENTRYPOINT ["m3serve-admin"]
CMD ["--help"]
