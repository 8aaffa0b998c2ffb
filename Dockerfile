# syntax=docker/dockerfile:1
# One static binary, run as `hookgate operator` or `hookgate receiver`.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w -X main.version=${VERSION}" -o /out/hookgate .

FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/hookgate /hookgate
USER 65532:65532
ENTRYPOINT ["/hookgate"]
