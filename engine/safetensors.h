// The safetensors file format: an 8-byte little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {...}},
// then the tensor bytes. Files are memory-mapped, read-only.
#ifndef HYBRIDSERVE_ENGINE_SAFETENSORS_H_
#define HYBRIDSERVE_ENGINE_SAFETENSORS_H_

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "engine/dtype.h"

namespace hybridserve::engine {

struct SafetensorsEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  // Points into the mapping; valid while the owning SafetensorsFile lives.
  // Not necessarily aligned to the element size: read through memcpy (as
  // ConvertFloats does).
  const std::byte* data = nullptr;
  size_t num_bytes = 0;

  int64_t num_elements() const;
};

// A memory-mapped safetensors file. Thread-compatible; immutable after Open.
class SafetensorsFile {
 public:
  // Maps and validates the file: header length within the file, JSON well-formed,
  // every dtype known, every shape non-negative, data_offsets inside the data
  // section, non-overlapping, and end - begin == numel * dtype size. Each error
  // names the file and, where there is one, the tensor. Gaps between tensors
  // and trailing bytes are tolerated (the reference reader rejects them; they
  // are harmless). entries() are in data-offset order.
  static absl::StatusOr<std::unique_ptr<SafetensorsFile>> Open(
      const std::filesystem::path& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::filesystem::path& path() const { return path_; }
  const std::vector<SafetensorsEntry>& entries() const { return entries_; }
  // nullptr when absent.
  const SafetensorsEntry* Find(std::string_view name) const;
  const std::map<std::string, std::string>& metadata() const { return metadata_; }

 private:
  SafetensorsFile() = default;
  std::filesystem::path path_;
  void* mapping_ = nullptr;
  size_t mapping_bytes_ = 0;
  std::vector<SafetensorsEntry> entries_;
  absl::flat_hash_map<std::string, size_t> index_;  // name → entries_ index
  std::map<std::string, std::string> metadata_;
};

// A tensor to write: `data` holds numel * DTypeSize(dtype) bytes.
struct SafetensorsWriteEntry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  absl::Span<const std::byte> data;
};

// Writes a safetensors file (tensors in the given order, 8-byte aligned header
// as the reference writer pads it: the JSON is followed by spaces up to a
// multiple of 8 bytes; no "__metadata__" key when `metadata` is empty). Error
// names the path (and the tensor, for a size that does not match its shape or
// a duplicate name). On error the file may be partly written.
absl::Status WriteSafetensors(const std::filesystem::path& path,
                              absl::Span<const SafetensorsWriteEntry> entries,
                              const std::map<std::string, std::string>& metadata);

}  // namespace hybridserve::engine

#endif  // HYBRIDSERVE_ENGINE_SAFETENSORS_H_
