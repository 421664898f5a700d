# Images for running Tidecache on a real Kubernetes cluster (kind, EKS, ...).
#
#   docker build --target cache-node -t tidecache/cache-node:0.1.0 .
#   docker build --target operator   -t tidecache/operator:0.1.0 .
#
# The embedded e2e harness needs neither: it maps these image names to the
# binaries cargo builds (see e2e/HARNESS.md).

FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --locked --release -p cache-node -p tidecache-operator && \
    mkdir -p /out && cp target/release/cache-node target/release/tidecache-operator /out/

FROM gcr.io/distroless/cc-debian12:nonroot AS cache-node
COPY --from=build /out/cache-node /usr/local/bin/cache-node
USER 65532:65532
EXPOSE 6379 9121
ENTRYPOINT ["/usr/local/bin/cache-node"]

FROM gcr.io/distroless/cc-debian12:nonroot AS operator
COPY --from=build /out/tidecache-operator /usr/local/bin/tidecache-operator
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/tidecache-operator"]
