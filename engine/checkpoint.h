// A Hugging Face checkpoint folder's tensors: model.safetensors, or the shards
// listed by model.safetensors.index.json, all memory-mapped.
#ifndef HYBRIDSERVE_ENGINE_CHECKPOINT_H_
#define HYBRIDSERVE_ENGINE_CHECKPOINT_H_

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/dtype.h"
#include "engine/safetensors.h"

namespace hybridserve::engine {

// Thread-compatible; immutable after Open.
class Checkpoint {
 public:
  // Opens `<dir>/model.safetensors`, or every shard named in
  // `<dir>/model.safetensors.index.json` (whose weight_map must name existing
  // shards, and each tensor must be in the shard the map says). Errors name the
  // file and tensor: missing folder or files, malformed shards or index, a tensor
  // in two shards. The index is preferred when both layouts are present; shard
  // names must be plain file names inside `dir`; tensors a shard holds beyond
  // the weight_map are available too.
  static absl::StatusOr<std::unique_ptr<Checkpoint>> Open(
      const std::filesystem::path& dir);
  // A checkpoint with no tensors (random weights: the models are built from
  // config.json alone and never read it). `dir` only names it in errors.
  static std::unique_ptr<Checkpoint> Empty(const std::filesystem::path& dir);

  const std::filesystem::path& dir() const { return dir_; }
  // nullptr when absent.
  const SafetensorsEntry* Find(std::string_view name) const;
  std::vector<std::string> TensorNames() const;  // sorted
  // Sum of all tensors' bytes as stored.
  uint64_t total_bytes() const { return total_bytes_; }

  // Copies tensor `name` into `dst` converted to `dst_dtype` (a float type),
  // after checking its shape equals `expected_shape`. Errors, naming the file and
  // tensor: missing tensor, shape mismatch (both shapes printed), non-float dtype.
  // REQUIRES: dst holds numel * DTypeSize(dst_dtype) bytes. On error dst is
  // unspecified.
  absl::Status Read(std::string_view name,
                    absl::Span<const int64_t> expected_shape, DType dst_dtype,
                    void* dst) const;

 private:
  Checkpoint() = default;
  std::filesystem::path dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  absl::flat_hash_map<std::string, const SafetensorsEntry*> by_name_;
  uint64_t total_bytes_ = 0;
};

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_CHECKPOINT_H_
