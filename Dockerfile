# syntax=docker/dockerfile:1
# One image for the whole project: `pushd` (every data-plane role) and `pushcluster-operator`.
#   docker build -t ghcr.io/pushcluster/pushcluster:0.1.0 .
# The operator's Deployments run it as `pushd <role>`; the chart runs `pushcluster-operator`.

ARG RUST_VERSION=1.90
ARG DEBIAN_RELEASE=trixie

FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
WORKDIR /src
# Manifests first, so the dependency download is cached while only sources change.
COPY Cargo.toml Cargo.lock ./
COPY dataplane ./dataplane
COPY operator ./operator
COPY tests/support ./tests/support
# Embedded in pushd: the OpenAPI spec (/openapi.yaml) and the JavaScript SDK (/sdk/pushcluster.js).
COPY docs/openapi.yaml ./docs/openapi.yaml
COPY clients/js/dist ./clients/js/dist
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p pushd -p pushcluster-operator \
    && install -D -m 0755 -t /out target/release/pushd target/release/pushcluster-operator

FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# CA certificates for TLS to MongoDB, Redis and APNs; nothing else.
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 65532 pushcluster \
    && useradd --system --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin pushcluster
COPY --from=build /out/pushd /out/pushcluster-operator /usr/local/bin/
# Numeric, so runAsNonRoot can verify it.
USER 65532:65532
EXPOSE 8080 7001 9080
ENTRYPOINT ["pushd"]
CMD ["--help"]
