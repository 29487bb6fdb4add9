# B2 Backup add-on image. The Supervisor builds this file on the device (no `image:` in
# config.yaml yet) with BuildKit, passing BUILD_VERSION and BUILD_ARCH; there is no BUILD_FROM.
# The build context is the repository root.

# ---------------------------------------------------------------- build stage
# Keep this tag in step with the Swift toolchain in Package.swift (swift-tools-version).
FROM swift:6.1-bookworm AS build

RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        libcurl4-openssl-dev \
        libssl-dev \
        libsqlite3-dev \
        pkg-config \
        zlib1g-dev \
    && rm -rf /var/lib/apt/lists/*

WORKDIR /src

# Dependencies first: this layer is reused until the manifest (or the lock file) changes.
COPY Package.* ./
RUN swift package resolve

# SwiftPM checks every target's folder, test targets included, so Tests/ must be present.
COPY Sources ./Sources
COPY Tests ./Tests
RUN swift build -c release --static-swift-stdlib --product b2-backup \
    && install -D -m 0755 "$(swift build -c release --show-bin-path)/b2-backup" \
        /out/b2-backup

# ------------------------------------------------------------------ run stage
FROM debian:bookworm-slim

ARG BUILD_VERSION=dev
ARG BUILD_ARCH

# Runtime libraries of the binary (the Swift runtime is linked statically), the CA bundle, and the
# time zone database: schedules run in Home Assistant's time zone (the slim image has none).
# setpriv (util-linux, Essential) and useradd (passwd) already come with debian:bookworm-slim.
RUN apt-get update \
    && apt-get install -y --no-install-recommends \
        ca-certificates \
        libcurl4 \
        libsqlite3-0 \
        tzdata \
        zlib1g \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --user-group --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin b2backup

COPY --from=build /out/b2-backup /usr/bin/b2-backup
COPY addon/rootfs/ /
RUN chmod 0755 /usr/bin/b2-backup /usr/bin/b2-backup-run

LABEL \
    io.hass.version="${BUILD_VERSION}" \
    io.hass.type="app" \
    io.hass.arch="${BUILD_ARCH}" \
    io.hass.name="B2 Backup" \
    io.hass.description="Back up Home Assistant to Backblaze B2 cloud storage" \
    io.hass.url="https://github.com/b2-backup/b2-backup" \
    org.opencontainers.image.title="B2 Backup" \
    org.opencontainers.image.description="Back up Home Assistant to Backblaze B2 cloud storage" \
    org.opencontainers.image.version="${BUILD_VERSION}" \
    org.opencontainers.image.source="https://github.com/b2-backup/b2-backup" \
    org.opencontainers.image.url="https://github.com/b2-backup/b2-backup" \
    org.opencontainers.image.documentation="https://github.com/b2-backup/b2-backup/blob/main/DOCS.md"

# `healthcheck` GETs http://127.0.0.1:8099/health and exits 0 or 1. The Supervisor
# restarts an unhealthy container when the user has turned on the watchdog.
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s \
    CMD ["/usr/bin/b2-backup", "healthcheck"]

# config.yaml has `init: true`: Docker's init (tini) is PID 1 and runs this script.
CMD ["/usr/bin/b2-backup-run"]
