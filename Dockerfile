# latch in a distroless image, running as a non-root user.
#
#   docker build -t latch .
#   docker run -p 7070:7070 -v latch-data:/var/lib/latch \
#     -v $PWD/auth:/etc/latch/auth:ro latch --auth-file /etc/latch/auth
#
# The auth file must be readable by uid 65532: chown 65532 and chmod 600 it,
# or store every token as sha256:<hex> and chmod 644 (docs/SECURITY.md).
# The server listens on 0.0.0.0:7070 inside the container, so it refuses to
# start without an --auth-file (docs/SECURITY.md), as it does on any
# non-loopback address; pass -e LATCH_INSECURE_NO_AUTH=1 only when the port
# is published to a trusted network alone. Data lives in the /var/lib/latch volume; fsync goes to
# whatever backs that volume, so use a local disk, not an overlay or NFS.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=docker
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/latch ./cmd/latch \
 && mkdir -p /out/data

# static-debian12:nonroot runs as uid/gid 65532 and has no shell.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/latch /usr/local/bin/latch
COPY --from=build --chown=65532:65532 /out/data /var/lib/latch
USER 65532:65532
VOLUME /var/lib/latch
EXPOSE 7070
ENV LATCH_ADDR=0.0.0.0:7070 LATCH_DATA_DIR=/var/lib/latch
ENTRYPOINT ["/usr/local/bin/latch", "serve"]
