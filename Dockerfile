# shiplog's container image: the `shiplog` binary on a slim Debian, run as a non-root user.
#
#   docker build -t shiplog:0.1.0 .
#   docker run -e DATABASE_URL=postgres://... -e SHIPLOG_ADMIN_TOKEN=... -p 8080:8080 -p 8081:8081 shiplog:0.1.0
#
# Both base images are pinned by version tag (the Rust toolchain the project builds with, on
# the Debian release the runtime uses, so the binary finds the glibc it was linked against).
# To pin by digest as well, append `@sha256:…` from `docker buildx imagetools inspect IMAGE`.

FROM rust:1.95.0-slim-bookworm AS builder
WORKDIR /build

# The dependencies in a layer of their own: the workspace's manifests and lock file over
# placeholder sources, built once. Docker reuses this layer until a Cargo.toml or
# Cargo.lock changes, so a change to shiplog's own code recompiles shiplog's crates only.
COPY Cargo.toml Cargo.lock ./
COPY domain/Cargo.toml domain/
COPY application/Cargo.toml application/
COPY infrastructure/Cargo.toml infrastructure/
COPY wire/Cargo.toml wire/
COPY client/Cargo.toml client/
COPY cli/Cargo.toml cli/
COPY api/Cargo.toml api/
COPY kube-sim/Cargo.toml kube-sim/
COPY bench/Cargo.toml bench/
COPY testkit/Cargo.toml testkit/
RUN set -eux; \
    for crate in domain application infrastructure wire client cli api kube-sim testkit; do \
        mkdir -p "$crate/src"; \
        echo '//! placeholder' > "$crate/src/lib.rs"; \
    done; \
    printf '//! placeholder\nfn main() {}\n' > api/src/main.rs; \
    mkdir -p bench/src tests/api; \
    printf '//! placeholder\nfn main() {}\n' > bench/src/main.rs; \
    printf '//! placeholder\nfn main() {}\n' > tests/api/main.rs; \
    cargo build --release --locked --bin shiplog; \
    rm -rf domain application infrastructure wire client cli api kube-sim bench testkit tests

# Then shiplog itself. COPY keeps the files' times, which can be older than the placeholders'
# build: touching the sources makes cargo rebuild the workspace's crates for certain.
COPY . .
RUN set -eux; \
    find domain application infrastructure wire client cli api kube-sim -name '*.rs' -exec touch {} +; \
    cargo build --release --locked --bin shiplog; \
    install -D -m 0755 target/release/shiplog /out/shiplog

FROM debian:12.11-slim
COPY --from=builder /out/shiplog /usr/local/bin/shiplog
# A numeric user, so that Kubernetes' runAsNonRoot can verify it (deploy/base runs it as 10001).
USER 10001:10001
# Listen outside the container; the ports are shiplog's defaults (API, applications proxy).
ENV SHIPLOG_LISTEN=0.0.0.0:8080 \
    SHIPLOG_PROXY_LISTEN=0.0.0.0:8081
EXPOSE 8080 8081
ENTRYPOINT ["/usr/local/bin/shiplog"]
CMD ["serve"]
