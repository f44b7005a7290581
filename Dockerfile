# The footfall image: one static-ish binary, every role.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN cargo build --release --locked --features kurrentdb

FROM debian:bookworm-slim
RUN apt-get update && apt-get install -y --no-install-recommends ca-certificates && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/footfall /usr/local/bin/footfall
USER nobody
EXPOSE 8000
ENTRYPOINT ["footfall"]
CMD ["serve"]
