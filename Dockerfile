# hybridserve container image: build with the CUDA toolkit, run on the CUDA
# runtime image as a non-root user.
#
#   docker build -t hybridserve .
#   docker run --gpus all -p 50051:50051 -p 9464:9464 \
#     -v /path/to/hf-checkpoint:/models/model:ro hybridserve
#
# The model folder (a Hugging Face checkpoint: config.json, *.safetensors,
# tokenizer.json) is mounted at /models/model. Arguments after the image name
# replace the default flags below (see `docker run hybridserve --help`).
# tests/deploy/dockerfile_test.py checks this file against the server's flags and
# the libraries of the local build (there is no Docker engine in CI).

ARG CUDA_VERSION=13.0.1
ARG UBUNTU=ubuntu24.04

# ---------------------------------------------------------------------------
FROM nvidia/cuda:${CUDA_VERSION}-devel-${UBUNTU} AS build

ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential cmake ninja-build pkg-config \
      libabsl-dev rapidjson-dev libpcre2-dev libutf8proc-dev \
      libgrpc++-dev libprotobuf-dev protobuf-compiler protobuf-compiler-grpc \
      prometheus-cpp-dev \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /src
COPY . .
# Extra CMake options, e.g. the CUDA backend's switch and architecture.
ARG HS_CMAKE_ARGS=""
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release -DHS_BUILD_TESTS=OFF \
      ${HS_CMAKE_ARGS} \
 && cmake --build /build --target hybridserve hs_client hs_make_tiny_model \
 && mkdir -p /opt/hybridserve/bin \
 && cp /build/server/hybridserve /build/tools/hs_client /build/tools/hs_make_tiny_model \
      /opt/hybridserve/bin/ \
 && deploy/docker/bundle_libs.sh /opt/hybridserve/lib \
      /opt/hybridserve/bin/hybridserve /opt/hybridserve/bin/hs_client \
      /opt/hybridserve/bin/hs_make_tiny_model

# ---------------------------------------------------------------------------
FROM nvidia/cuda:${CUDA_VERSION}-runtime-${UBUNTU} AS runtime

# Binaries and every library they load beyond glibc and CUDA (bundle_libs.sh).
COPY --from=build /opt/hybridserve /opt/hybridserve
ENV PATH=/opt/hybridserve/bin:${PATH} \
    LD_LIBRARY_PATH=/opt/hybridserve/lib:/usr/local/nvidia/lib:/usr/local/nvidia/lib64

RUN groupadd --system --gid 10001 hybridserve \
 && useradd --system --uid 10001 --gid 10001 --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin hybridserve \
 && mkdir -p /models/model \
 && chown -R 10001:10001 /models
USER 10001:10001

VOLUME ["/models/model"]
# gRPC (hybridserve.v1.Inference, grpc.health.v1, reflection), Prometheus /metrics.
EXPOSE 50051 9464

ENTRYPOINT ["hybridserve"]
CMD ["--model=/models/model", "--host=0.0.0.0", "--port=50051", "--metrics-port=9464", \
     "--device=auto", "--drain-timeout=30"]
