# mailferry as a container image: a static binary on distroless, run as
# the non-root user 65532. Deployment on Kubernetes: deploy/kubernetes/ and
# docs/scale.md. cmd/mailferry/deploy_test.go runs this file's build command.
#
#   docker build --build-arg VERSION=v0.1.0 -t registry.example.com/mailferry:v0.1.0 .

FROM golang:1.26 AS build
WORKDIR /src
# Modules first: a change to the source does not download them again.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
# CGO_ENABLED=0: no libc to link, so the binary runs on an image without
# one; -trimpath and -s -w keep build paths and symbols out of it. Keep it
# one simple command: the test runs it as written.
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" -o /out/mailferry ./cmd/mailferry

# static-debian12 has CA certificates (for imaps:// and STARTTLS), tzdata
# and /etc/passwd entries, and nothing else: no shell, no package manager.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mailferry /mailferry
# Numeric, so that Kubernetes' runAsNonRoot can check it.
USER 65532:65532
ENTRYPOINT ["/mailferry"]
