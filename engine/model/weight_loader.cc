#include "engine/model/weight_loader.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "engine/status_macros.h"

namespace hybridserve::engine {
namespace {

constexpr uint64_t kTensorAlignment = 256;

int64_t Product(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

Tensor MakeTensor(void* data, DType dtype, const std::vector<int64_t>& shape) {
  Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.rank = static_cast<int>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) t.shape[i] = shape[i];
  return t;
}

// FNV-1a, to derive a tensor's stream from its name.
uint64_t HashName(const std::string& name) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

// softplus⁻¹(y) = log(expm1(y)).
float InverseSoftplus(double y) { return static_cast<float>(std::log(std::expm1(y))); }

struct Range {
  float lo;
  float hi;
};

// See the header's random-weights comment. `shape` is the part's own shape.
Range RandomRange(const std::string& name, const std::vector<int64_t>& shape) {
  if (absl::EndsWith(name, "A_log")) {
    const double top = shape.size() >= 2 ? std::log(static_cast<double>(shape[1]))
                                         : std::log(16.0);
    return {0.0f, static_cast<float>(top)};
  }
  if (absl::EndsWith(name, "dt_bias") || absl::EndsWith(name, "dt_proj.bias")) {
    return {InverseSoftplus(0.001), InverseSoftplus(0.1)};
  }
  if (absl::EndsWith(name, ".D") || name == "D") return {1.0f, 1.0f};
  if (absl::EndsWith(name, ".bias")) return {0.0f, 0.0f};
  if (shape.size() == 1 && name.find("norm") != std::string::npos) return {1.0f, 1.0f};
  int64_t fan_in = 1;
  for (size_t i = 1; i < shape.size(); ++i) fan_in *= shape[i];
  if (shape.size() == 1) fan_in = shape[0];
  const float bound = 1.0f / std::sqrt(static_cast<float>(std::max<int64_t>(fan_in, 1)));
  return {-bound, bound};
}

}  // namespace

WeightLoader::WeightLoader(const Checkpoint* checkpoint, Backend* backend,
                           DType weight_precision, std::optional<uint64_t> random_seed)
    : checkpoint_(checkpoint),
      backend_(backend),
      precision_(weight_precision),
      random_seed_(random_seed) {}

absl::Status WeightLoader::FillRandom(const Planned& p) {
  const DType act = backend_->act_dtype();
  const int64_t row_elems = Product(p.shape) / p.shape[0];
  int64_t row = 0;
  for (size_t i = 0; i < p.parts.size(); ++i) {
    std::vector<int64_t> part_shape = p.shape;
    part_shape[0] = p.part_rows[i];
    const Range range = RandomRange(p.parts[i], part_shape);
    char* dst = static_cast<char*>(buffer_.data()) + p.offset +
                row * row_elems * DTypeSize(act);
    const Tensor part(dst, act, {Product(part_shape)});
    const uint64_t seed = *random_seed_ ^ (HashName(p.parts[i]) * 0x9E3779B97F4A7C15ull);
    HS_RETURN_IF_ERROR(backend_->FillUniform(part, seed, range.lo, range.hi));
    row += p.part_rows[i];
  }
  return absl::OkStatus();
}

void WeightLoader::Add(std::vector<std::string> parts,
                       std::vector<int64_t> part_rows,
                       std::vector<int64_t> shape, Tensor* out) {
  HS_CHECK(parts.size() == part_rows.size() && !shape.empty() &&
           shape.size() <= kMaxTensorRank);
  const uint64_t bytes = Product(shape) * DTypeSize(backend_->act_dtype());
  planned_.push_back({std::move(parts), std::move(part_rows), std::move(shape),
                      out, total_bytes_});
  total_bytes_ += (bytes + kTensorAlignment - 1) / kTensorAlignment * kTensorAlignment;
}

void WeightLoader::Add(std::string name, std::vector<int64_t> shape, Tensor* out) {
  const int64_t rows = shape[0];
  Add({std::move(name)}, {rows}, std::move(shape), out);
}

absl::Status WeightLoader::Load(
    const std::function<void(const std::string&)>& progress) {
  const DType act = backend_->act_dtype();
  if (random_seed_.has_value()) {
    HS_ASSIGN_OR_RETURN(buffer_, backend_->Allocate(total_bytes_, "weights"));
    for (const Planned& p : planned_) HS_RETURN_IF_ERROR(FillRandom(p));
    HS_RETURN_IF_ERROR(backend_->Synchronize());
    if (progress) {
      progress(absl::StrFormat("random weights (seed %d): %.1f MiB", *random_seed_,
                               total_bytes_ / 1048576.0));
    }
    for (const Planned& p : planned_) {
      *p.out = MakeTensor(static_cast<char*>(buffer_.data()) + p.offset, act, p.shape);
    }
    return absl::OkStatus();
  }
  // Check every tensor exists before allocating anything.
  for (const Planned& p : planned_) {
    for (const std::string& part : p.parts) {
      if (checkpoint_->Find(part) == nullptr) {
        return absl::NotFoundError(absl::StrCat(
            "checkpoint ", checkpoint_->dir().string(), " has no tensor '", part,
            "' (needed by the model)"));
      }
    }
  }
  HS_ASSIGN_OR_RETURN(buffer_, backend_->Allocate(total_bytes_, "weights"));
  std::vector<float> staging;
  std::vector<std::byte> converted;
  uint64_t done_bytes = 0;
  int last_decile = -1;
  for (const Planned& p : planned_) {
    const int64_t row_elems = Product(p.shape) / p.shape[0];
    int64_t row = 0;
    for (size_t i = 0; i < p.parts.size(); ++i) {
      std::vector<int64_t> part_shape = p.shape;
      part_shape[0] = p.part_rows[i];
      const int64_t n = Product(part_shape);
      staging.resize(n);
      HS_RETURN_IF_ERROR(
          checkpoint_->Read(p.parts[i], part_shape, DType::kF32, staging.data()));
      if (precision_ != DType::kF32) {
        for (float& v : staging) v = RoundTo(precision_, v);
      }
      const void* src = staging.data();
      if (act != DType::kF32) {
        converted.resize(n * DTypeSize(act));
        ConvertFloats(staging.data(), DType::kF32, converted.data(), act, n);
        src = converted.data();
      }
      char* dst = static_cast<char*>(buffer_.data()) + p.offset +
                  row * row_elems * DTypeSize(act);
      HS_RETURN_IF_ERROR(backend_->CopyToDevice(src, dst, n * DTypeSize(act)));
      row += p.part_rows[i];
    }
    done_bytes += Product(p.shape) * DTypeSize(act);
    const int decile = static_cast<int>(10 * done_bytes / std::max<uint64_t>(total_bytes_, 1));
    if (progress && decile != last_decile) {
      last_decile = decile;
      progress(absl::StrFormat("loading weights: %d%% (%.1f / %.1f MiB)",
                               std::min(decile * 10, 100), done_bytes / 1048576.0,
                               total_bytes_ / 1048576.0));
    }
  }
  for (const Planned& p : planned_) {
    *p.out = MakeTensor(static_cast<char*>(buffer_.data()) + p.offset, act, p.shape);
  }
  return absl::OkStatus();
}

}  // namespace hybridserve::engine
