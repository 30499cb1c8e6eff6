# giftcodes: build with the Rust toolchain, run on a slim base as a non-root numeric user.
#   docker build -t giftcodes .
#   docker run -p 8080:8080 -e DATABASE_URL=mysql://user:pass@db:3306/giftcodes \
#     -e GIFTCODES_ADMIN_TOKEN=... -e GIFTCODES_CLIENT_TOKENS=... giftcodes
# Stop it with a grace period longer than the service's own drain (`docker stop -t 25`).
#
# BINARY_IMAGE is where the runtime stage takes `/giftcodes` from: the `build` stage below (the
# default), or an image that holds a prebuilt release binary at `/giftcodes`
# (scripts/container-check.sh, on machines with no Rust image to build from).
ARG BINARY_IMAGE=build

FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin giftcodes \
    && cp target/release/giftcodes /giftcodes

FROM ${BINARY_IMAGE} AS binary

# No packages: TLS roots for MySQL are compiled in (rustls with webpki-roots) and the
# HEALTHCHECK is the binary itself, so this stage needs no network.
FROM debian:bookworm-slim
RUN groupadd --gid 10001 giftcodes \
    && useradd --no-log-init --uid 10001 --gid 10001 --create-home --home-dir /app \
        --shell /usr/sbin/nologin giftcodes \
    && mkdir /app/data && chown 10001:10001 /app/data
COPY --from=binary /giftcodes /usr/local/bin/giftcodes
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
