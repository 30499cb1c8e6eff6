# giftcodes: build with the Rust toolchain, run on a slim base as a non-root user.
#   docker build -t giftcodes .
#   docker run -p 8080:8080 -e DATABASE_URL=mysql://user:pass@db:3306/giftcodes \
#     -e GIFTCODES_ADMIN_TOKEN=... -e GIFTCODES_CLIENT_TOKENS=... giftcodes
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --bin giftcodes

FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates curl \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --create-home --home-dir /app giftcodes \
    && mkdir /app/data && chown giftcodes /app/data
COPY --from=build /src/target/release/giftcodes /usr/local/bin/giftcodes
USER giftcodes
WORKDIR /app
ENV GIFTCODES_LISTEN=0.0.0.0:8080 \
    DATABASE_URL=sqlite:///app/data/giftcodes.db?mode=rwc \
    GIFTCODES_LOG_FORMAT=json
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s \
    CMD curl -fsS http://127.0.0.1:8080/healthz || exit 1
ENTRYPOINT ["giftcodes"]
CMD ["serve"]
