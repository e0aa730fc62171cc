#include "tests/gpu/gpu_test_util.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/backend/cuda/cuda_backend.h"

namespace hybridserve::gpu_testing {

using engine::DType;

bool GpuAvailable(std::string* why) {
#if defined(HS_HAVE_CUDA)
  return engine::CudaDeviceAvailable(why);
#else
  *why = "this build has no CUDA backend (HS_HAVE_CUDA undefined)";
  return false;
#endif
}

std::string SkipMessage(const std::string& why) {
  return absl::StrCat("SKIPPED: no CUDA device (", why, ")");
}

absl::StatusOr<std::unique_ptr<engine::Backend>> MakeCudaBackend(DType act_dtype) {
#if defined(HS_HAVE_CUDA)
  return engine::CreateCudaBackend(engine::CudaBackendOptions{.act_dtype = act_dtype});
#else
  return absl::FailedPreconditionError("this build has no CUDA backend");
#endif
}

void RoundAll(DType dtype, std::vector<float>* v) {
  if (dtype == DType::kF32) return;
  for (float& x : *v) x = engine::RoundTo(dtype, x);
}

HostTensor::HostTensor(std::vector<float> values, std::initializer_list<int64_t> shape)
    : is_index_(false), shape_(shape), values_(std::move(values)) {
  HS_CHECK(static_cast<int64_t>(values_.size()) == numel());
  HS_CHECK(shape_.size() <= engine::kMaxTensorRank);
}

HostTensor::HostTensor(std::vector<int32_t> indices, std::initializer_list<int64_t> shape)
    : is_index_(true), shape_(shape), indices_(std::move(indices)) {
  HS_CHECK(static_cast<int64_t>(indices_.size()) == numel());
  HS_CHECK(shape_.size() <= engine::kMaxTensorRank);
}

int64_t HostTensor::numel() const {
  int64_t n = 1;
  for (int64_t d : shape_) n *= d;
  return n;
}

HostTensor Poison(std::initializer_list<int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return HostTensor(std::vector<float>(n, std::numeric_limits<float>::quiet_NaN()), shape);
}

namespace {

engine::Tensor MakeView(void* data, DType dtype, const std::vector<int64_t>& shape) {
  engine::Tensor t;
  t.data = data;
  t.dtype = dtype;
  t.rank = static_cast<int>(shape.size());
  for (size_t i = 0; i < shape.size(); ++i) t.shape[i] = shape[i];
  return t;
}

}  // namespace

engine::Tensor HostTensor::HostView() {
  return is_index_ ? MakeView(indices_.data(), DType::kI32, shape_)
                   : MakeView(values_.data(), DType::kF32, shape_);
}

std::string HostTensor::ShapeString() const {
  return absl::StrCat("[", absl::StrJoin(shape_, ", "), "]");
}

absl::StatusOr<DeviceTensor> Upload(engine::Backend& backend, const HostTensor& host,
                                    DType dtype) {
  const DType stored = host.is_index() ? DType::kI32 : dtype;
  const size_t bytes = static_cast<size_t>(host.numel()) * engine::DTypeSize(stored);
  DeviceTensor out;
  // Zero-element tensors still get a (1-byte) allocation so the view is not
  // "empty" (data == nullptr means "absent" to the ops).
  auto buffer = backend.Allocate(std::max<size_t>(bytes, 1), "test");
  if (!buffer.ok()) return buffer.status();
  out.buffer = *std::move(buffer);
  out.view = MakeView(out.buffer.data(), stored, host.shape());
  if (bytes == 0) return out;
  absl::Status st;
  if (host.is_index()) {
    st = backend.CopyToDevice(host.indices().data(), out.buffer.data(), bytes);
  } else if (stored == DType::kF32) {
    st = backend.CopyToDevice(host.values().data(), out.buffer.data(), bytes);
  } else {
    std::vector<uint16_t> converted(host.numel());
    engine::ConvertFloats(host.values().data(), DType::kF32, converted.data(), stored,
                          host.numel());
    st = backend.CopyToDevice(converted.data(), out.buffer.data(), bytes);
  }
  if (!st.ok()) return st;
  return out;
}

absl::StatusOr<std::vector<float>> Download(engine::Backend& backend, const engine::Tensor& t) {
  if (!engine::IsFloat(t.dtype)) {
    return absl::InvalidArgumentError("Download: not a float tensor");
  }
  std::vector<float> out(t.numel());
  absl::Status st = backend.Synchronize();
  if (!st.ok()) return st;
  if (t.dtype == DType::kF32) {
    st = backend.CopyToHost(t.data, out.data(), t.num_bytes());
  } else {
    std::vector<uint16_t> raw(t.numel());
    st = backend.CopyToHost(t.data, raw.data(), t.num_bytes());
    if (st.ok()) engine::ConvertFloats(raw.data(), t.dtype, out.data(), DType::kF32, t.numel());
  }
  if (!st.ok()) return st;
  return out;
}

std::string Comparison::Summary() const {
  return absl::StrCat(ok ? "ok" : "MISMATCH", ": ", num_bad, " elements out of tolerance",
                      first_bad >= 0 ? absl::StrCat(" (first at flat index ", first_bad, ")")
                                     : std::string(),
                      ", max |err| ", max_abs_error, ", max rel err ", max_rel_error);
}

Comparison Compare(const std::vector<float>& gpu, const std::vector<float>& ref,
                   Tolerance tol) {
  Comparison c;
  if (gpu.size() != ref.size()) {
    c.ok = false;
    c.num_bad = static_cast<int64_t>(std::max(gpu.size(), ref.size()));
    c.first_bad = 0;
    return c;
  }
  for (size_t i = 0; i < gpu.size(); ++i) {
    const double g = gpu[i], r = ref[i];
    const double err = std::abs(g - r);
    bool bad;
    if (!std::isfinite(g) || !std::isfinite(r)) {
      // Both must be the same non-finite value (inf of one sign); NaN never passes.
      bad = !(g == r);
    } else {
      bad = !(err <= tol.atol + tol.rtol * std::abs(r));
      c.max_abs_error = std::max(c.max_abs_error, err);
      c.max_rel_error = std::max(c.max_rel_error, err / std::max(std::abs(r), 1e-6));
    }
    if (bad) {
      if (c.first_bad < 0) c.first_bad = static_cast<int64_t>(i);
      ++c.num_bad;
    }
  }
  c.ok = c.num_bad == 0;
  return c;
}

void FailureDump::Add(const std::string& name, const HostTensor& t) {
  if (t.numel() > kMaxDumpElements) {
    omitted_.push_back(absl::StrCat(name, " ", t.ShapeString()));
    return;
  }
  tensors_.emplace_back(name, t);
}

void FailureDump::AddValues(const std::string& name, const std::vector<float>& v,
                            std::initializer_list<int64_t> shape) {
  if (static_cast<int64_t>(v.size()) > kMaxDumpElements) {
    omitted_.push_back(absl::StrCat(name, " (", v.size(), " elements)"));
    return;
  }
  tensors_.emplace_back(name, HostTensor(v, shape));
}

Comparison FailureDump::Check(const std::string& what, const std::vector<float>& gpu,
                              const std::vector<float>& ref,
                              std::initializer_list<int64_t> shape, Tolerance tol) {
  const Comparison c = Compare(gpu, ref, tol);
  std::printf("[parity] %s%s%s: max |err| %.3g, max rel %.3g (atol %.3g, rtol %.3g)%s\n",
              tag_.c_str(), tag_.empty() ? "" : " ", what.c_str(), c.max_abs_error,
              c.max_rel_error, tol.atol, tol.rtol, c.ok ? "" : "  <-- MISMATCH");
  if (!c.ok) {
    std::string where;
    if (c.first_bad >= 0 && static_cast<size_t>(c.first_bad) < gpu.size() &&
        gpu.size() == ref.size()) {
      where = absl::StrCat("; at ", c.first_bad, ": gpu ", gpu[c.first_bad], " ref ",
                           ref[c.first_bad]);
    }
    ADD_FAILURE() << tag_ << " " << what << ": " << c.Summary() << where;
    if (gpu.size() == ref.size()) {
      AddValues(what + ".gpu", gpu, shape);
      AddValues(what + ".ref", ref, shape);
    }
    Write(what + ": " + c.Summary());
  }
  return c;
}

namespace {

std::string SafeName(std::string s) {
  for (char& ch : s) {
    const bool ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                    (ch >= '0' && ch <= '9') || ch == '.' || ch == '_' || ch == '-';
    if (!ok) ch = '_';
  }
  return s;
}

}  // namespace

void FailureDump::Write(const std::string& reason) {
  const char* root = std::getenv("HS_GPU_FAIL_DIR");
  if (root == nullptr || *root == '\0') return;
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = info != nullptr
                         ? absl::StrCat(info->test_suite_name(), ".", info->name())
                         : std::string("no_test");
  if (!tag_.empty()) absl::StrAppend(&name, "_", tag_);
  std::filesystem::path dir = std::filesystem::path(root) / SafeName(name);
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) {
    std::fprintf(stderr, "cannot create %s: %s\n", dir.c_str(), ec.message().c_str());
    return;
  }
  std::string meta = "{\n  \"reason\": \"";
  for (char ch : reason) {
    if (ch == '"' || ch == '\\') meta.push_back('\\');
    if (ch != '\n') meta.push_back(ch);
  }
  meta += "\",\n  \"tensors\": [";
  bool first = true;
  for (const auto& [tname, t] : tensors_) {
    const std::string file = SafeName(tname) + ".bin";
    std::ofstream out(dir / file, std::ios::binary);
    if (t.is_index()) {
      out.write(reinterpret_cast<const char*>(t.indices().data()),
                static_cast<std::streamsize>(t.indices().size() * sizeof(int32_t)));
    } else {
      out.write(reinterpret_cast<const char*>(t.values().data()),
                static_cast<std::streamsize>(t.values().size() * sizeof(float)));
    }
    absl::StrAppend(&meta, first ? "\n" : ",\n", "    {\"name\": \"", SafeName(tname),
                    "\", \"file\": \"", file, "\", \"dtype\": \"", t.is_index() ? "i32" : "f32",
                    "\", \"shape\": ", t.ShapeString(), "}");
    first = false;
  }
  meta += "\n  ],\n  \"omitted_as_too_large\": [";
  for (size_t i = 0; i < omitted_.size(); ++i) {
    absl::StrAppend(&meta, i ? ", " : "", "\"", omitted_[i], "\"");
  }
  meta += "]\n}\n";
  std::ofstream(dir / "meta.json") << meta;
}

void BackendParityTest::SetUp() {
  HS_REQUIRE_GPU();
  HS_GPU_ASSIGN(gpu_, MakeCudaBackend(act()));
  ASSERT_EQ(gpu_->act_dtype(), act());
}

HostTensor BackendParityTest::In(std::vector<float> v, std::initializer_list<int64_t> shape) const {
  RoundAll(act(), &v);
  return HostTensor(std::move(v), shape);
}

std::string DTypeTestName(const ::testing::TestParamInfo<DType>& info) {
  return info.param == DType::kBF16 ? "bf16" : info.param == DType::kF16 ? "f16" : "f32";
}

}  // namespace hybridserve::gpu_testing
