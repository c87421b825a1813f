# The release binary on a slim Debian base. Build: docker build -t purser .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked -p purser \
 && install -Dm755 target/release/purser /out/purser

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/purser --create-home purser
COPY --from=build /out/purser /usr/local/bin/purser
USER purser
WORKDIR /var/lib/purser
ENV PURSER__SERVER__LISTEN=0.0.0.0:8402 \
    PURSER__TELEMETRY__LOG_FORMAT=json
EXPOSE 8402
ENTRYPOINT ["purser"]
CMD ["serve"]
