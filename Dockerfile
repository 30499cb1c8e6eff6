# giftcodes: build with the Rust toolchain, run on a slim base as a non-root numeric user.
#   docker build -t giftcodes .
#   docker run -p 8080:8080 -e DATABASE_URL=mysql://user:pass@db:3306/giftcodes \
#     -e GIFTCODES_ADMIN_TOKEN=... -e GIFTCODES_CLIENT_TOKENS=... giftcodes
# Stop it with a grace period longer than the service's own drain (`docker stop -t 25`).
#
# The runtime stage comes first and the image is `runtime` plus the binary, so that
# scripts/container-check.sh, which has no Rust image to build from, can build
# `--target runtime` and add a prebuilt release binary the way the last stage does.

# No packages: TLS roots for MySQL are compiled in (rustls with webpki-roots) and the
# HEALTHCHECK is the binary itself, so this stage needs no network.
FROM debian:bookworm-slim AS runtime
RUN groupadd --gid 10001 giftcodes \
    && useradd --no-log-init --uid 10001 --gid 10001 --create-home --home-dir /app \
        --shell /usr/sbin/nologin giftcodes \
    && mkdir /app/data && chown 10001:10001 /app/data
USER 10001:10001
WORKDIR /app
ENV GIFTCODES_LISTEN=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///app/data/giftcodes.db?mode=rwc \
    GIFTCODES_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["giftcodes", "healthcheck"]
ENTRYPOINT ["giftcodes"]
CMD ["serve"]

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin giftcodes

FROM runtime
COPY --from=build /src/target/release/giftcodes /usr/local/bin/giftcodes
