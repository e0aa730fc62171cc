// The emulator's host runtime (include/emu_runtime.h) keeps the promises the
// whole-model emu tests rely on: queued work runs only when the host waits
// for it, copies from pinned memory read their source late, copies from
// pageable memory read it at once, an event waits only up to itself, and host
// code that touches device memory stops with a message.
#include <cuda_runtime.h>

#include <cstring>
#include <vector>

#include "engine/backend/cuda/elementwise_kernels.h"
#include "gtest/gtest.h"

namespace hybridserve::cuda_emu_testing {
namespace {

using engine::cuda::BroadcastRowParams;
using engine::cuda::ElemType;
using engine::cuda::LaunchBroadcastRow;

class EmuRuntimeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), cudaSuccess);
    ASSERT_EQ(cudaMalloc(&device_, kBytes), cudaSuccess);
    ASSERT_EQ(cudaMallocHost(&pinned_, kBytes), cudaSuccess);
  }
  void TearDown() override {
    cudaFreeHost(pinned_);
    cudaFree(device_);
    cudaStreamDestroy(stream_);
  }
  // The device buffer's floats, read back through a synchronous copy.
  std::vector<float> Read() {
    std::vector<float> out(kFloats);
    EXPECT_EQ(cudaMemcpyAsync(out.data(), device_, kBytes, cudaMemcpyDeviceToHost, stream_),
              cudaSuccess);
    return out;
  }

  static constexpr size_t kFloats = 64;
  static constexpr size_t kBytes = kFloats * sizeof(float);
  cudaStream_t stream_ = nullptr;
  void* device_ = nullptr;
  void* pinned_ = nullptr;
};

TEST_F(EmuRuntimeTest, KernelRunsWhenTheStreamIsWaitedFor) {
  std::vector<float> row(kFloats, 7.0f);
  ASSERT_EQ(cudaMemcpyAsync(device_, row.data(), kBytes, cudaMemcpyHostToDevice, stream_),
            cudaSuccess);
  void* row_device = nullptr;
  ASSERT_EQ(cudaMalloc(&row_device, kBytes), cudaSuccess);
  std::vector<float> twos(kFloats, 2.0f);
  ASSERT_EQ(cudaMemcpyAsync(row_device, twos.data(), kBytes, cudaMemcpyHostToDevice, stream_),
            cudaSuccess);
  BroadcastRowParams p;
  p.row = row_device;
  p.out = device_;
  p.rows = 1;
  p.n = kFloats;
  p.elem = ElemType::kF32;
  const long long blocks_before = emu::blocks_run;
  ASSERT_EQ(LaunchBroadcastRow(p, stream_), cudaSuccess);
  EXPECT_EQ(emu::blocks_run, blocks_before) << "the kernel ran before anything waited for it";
  ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
  EXPECT_GT(emu::blocks_run, blocks_before);
  EXPECT_EQ(Read(), twos);
  cudaFree(row_device);
}

TEST_F(EmuRuntimeTest, PinnedSourceIsReadWhenTheCopyRunsPageableAtTheCall) {
  auto* pinned = static_cast<float*>(pinned_);
  for (size_t i = 0; i < kFloats; ++i) pinned[i] = 1.0f;
  ASSERT_EQ(cudaMemcpyAsync(device_, pinned_, kBytes, cudaMemcpyHostToDevice, stream_),
            cudaSuccess);
  // Reused before the copy ran: a GPU may copy either value; here it is the late one.
  for (size_t i = 0; i < kFloats; ++i) pinned[i] = 3.0f;
  EXPECT_EQ(Read(), std::vector<float>(kFloats, 3.0f));

  std::vector<float> pageable(kFloats, 4.0f);
  ASSERT_EQ(cudaMemcpyAsync(device_, pageable.data(), kBytes, cudaMemcpyHostToDevice, stream_),
            cudaSuccess);
  std::fill(pageable.begin(), pageable.end(), 5.0f);
  EXPECT_EQ(Read(), std::vector<float>(kFloats, 4.0f));
}

TEST_F(EmuRuntimeTest, EventSynchronizeRunsOnlyUpToTheEvent) {
  cudaEvent_t event = nullptr;
  ASSERT_EQ(cudaEventCreateWithFlags(&event, cudaEventDisableTiming), cudaSuccess);
  std::vector<float> ones(kFloats, 1.0f), nines(kFloats, 9.0f);
  ASSERT_EQ(cudaMemcpyAsync(device_, ones.data(), kBytes, cudaMemcpyHostToDevice, stream_),
            cudaSuccess);
  ASSERT_EQ(cudaEventRecord(event, stream_), cudaSuccess);
  ASSERT_EQ(cudaMemcpyAsync(device_, nines.data(), kBytes, cudaMemcpyHostToDevice, stream_),
            cudaSuccess);
  // Into pinned memory: queued too, so nothing after the event has run yet.
  ASSERT_EQ(cudaMemcpyAsync(pinned_, device_, kBytes, cudaMemcpyDeviceToHost, stream_),
            cudaSuccess);
  std::memset(pinned_, 0, kBytes);
  ASSERT_EQ(cudaEventSynchronize(event), cudaSuccess);
  EXPECT_EQ(static_cast<float*>(pinned_)[0], 0.0f) << "work after the event ran";
  ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
  EXPECT_EQ(static_cast<float*>(pinned_)[0], 9.0f);
  cudaEventDestroy(event);
}

TEST_F(EmuRuntimeTest, CopyKindMustMatchThePointers) {
  std::vector<float> host(kFloats);
  EXPECT_EQ(cudaMemcpyAsync(host.data(), device_, kBytes, cudaMemcpyHostToDevice, stream_),
            cudaErrorInvalidValue);
  EXPECT_EQ(cudaMemsetAsync(host.data(), 0, kBytes, stream_), cudaErrorInvalidValue);
}

TEST_F(EmuRuntimeTest, DeviceMemoryIsFullAndFreedExactly) {
  size_t free_before = 0, total = 0;
  ASSERT_EQ(cudaMemGetInfo(&free_before, &total), cudaSuccess);
  void* too_big = nullptr;
  EXPECT_EQ(cudaMalloc(&too_big, free_before + 1), cudaErrorMemoryAllocation);
  EXPECT_EQ(cudaGetLastError(), cudaErrorMemoryAllocation);
  void* p = nullptr;
  ASSERT_EQ(cudaMalloc(&p, 1000), cudaSuccess);
  size_t free_after = 0;
  cudaMemGetInfo(&free_after, &total);
  EXPECT_EQ(free_before - free_after, 1000u);
  cudaFree(p);
  cudaMemGetInfo(&free_after, &total);
  EXPECT_EQ(free_after, free_before);
}

TEST_F(EmuRuntimeTest, HostCodeTouchingDeviceMemoryStops) {
  if (!emu::kProtectDeviceMemory) GTEST_SKIP() << "ASan build: device memory is not protected";
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_DEATH(static_cast<volatile float*>(device_)[3] = 1.0f,
               "EMU: host code touched device memory");
}

}  // namespace
}  // namespace hybridserve::cuda_emu_testing
