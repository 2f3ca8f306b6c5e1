# syntax=docker/dockerfile:1
# Base images and the Go module proxy are build arguments: gcr.io and
# proxy.golang.org are not reachable from mainland China, so a build there
# passes mirrors, e.g.
#   docker build --build-arg GOPROXY=https://goproxy.cn,direct \
#     --build-arg BUILD_IMAGE=docker.m.daocloud.io/library/golang:1.26-bookworm \
#     --build-arg RUNTIME_IMAGE=your.registry/distroless/static-debian12:nonroot .
ARG BUILD_IMAGE=golang:1.26-bookworm
ARG RUNTIME_IMAGE=gcr.io/distroless/static-debian12:nonroot

# Build: a static binary with no cgo.
FROM ${BUILD_IMAGE} AS build
ARG GOPROXY=https://proxy.golang.org,direct
ARG GOSUMDB=sum.golang.org
ENV GOPROXY=${GOPROXY} GOSUMDB=${GOSUMDB}
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
FROM ${RUNTIME_IMAGE}
ARG VERSION=dev
ARG REVISION=
ARG CREATED=
LABEL org.opencontainers.image.title="wecombot" \
      org.opencontainers.image.description="Private-traffic community bot for WeCom (企业微信): welcome scripts, AIPL funnel, check-ins, coupons, AI replies" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.source="https://github.com/wecombot/wecombot" \
      org.opencontainers.image.documentation="https://github.com/wecombot/wecombot/blob/main/docs/deploy.md"
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
