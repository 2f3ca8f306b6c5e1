# syntax=docker/dockerfile:1
# Build: a static binary with no cgo.
FROM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/wecombot ./cmd/wecombot \
 && mkdir -p /out/data

# Run: distroless static (CA certificates for qyapi.weixin.qq.com and the
# model API; no shell, no libc), non-root (uid 65532), data on a volume. The
# binary embeds its time zones and scenarios. See docs/deploy.md.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/wecombot /usr/local/bin/wecombot
COPY --from=build --chown=nonroot:nonroot /out/data /data
ENV WECOMBOT_DATA_DIR=/data \
    WECOMBOT_LISTEN=:8080
VOLUME ["/data"]
EXPOSE 8080
USER nonroot:nonroot
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/usr/local/bin/wecombot", "healthcheck"]
ENTRYPOINT ["/usr/local/bin/wecombot"]
CMD ["serve"]
