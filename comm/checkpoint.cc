#include "comm/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include <fmt/format.h>
#include <xxhash.h>

#include "comm/protocol.h"
#include "quant/wire.h"

namespace gradzip::comm {
namespace fs = std::filesystem;
using quant::load_le;
using quant::store_le;

namespace {
constexpr std::uint32_t kCkptMagic = 0x4B435A47u;  // "GZCK"
constexpr std::uint32_t kCkptFormat = 1;
constexpr std::size_t kCkptHeader = 40;

constexpr std::uint32_t kWorkerMagic = 0x4B575A47u;  // "GZWK"
constexpr std::uint32_t kWorkerFormat = 2;
constexpr std::size_t kWorkerHeaderV1 = 44;  // version 1: no transport state
constexpr std::size_t kWorkerHeader = 52;

std::string prefix(std::uint32_t shard) { return fmt::format("shard-{}-step-", shard); }
std::string worker_prefix(std::uint32_t worker) { return fmt::format("worker-{}-step-", worker); }

// Checkpoint files "<pre><digits>.ckpt" in `dir`, newest (highest step) first.
std::vector<std::pair<std::uint64_t, fs::path>> list_checkpoints(const std::string& dir, const std::string& pre) {
  std::vector<std::pair<std::uint64_t, fs::path>> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const std::string name = entry.path().filename().string();
    if (name.rfind(pre, 0) != 0 || name.size() < pre.size() + 5 || name.substr(name.size() - 5) != ".ckpt") continue;
    const std::string digits = name.substr(pre.size(), name.size() - 5 - pre.size());
    if (digits.empty() || !std::all_of(digits.begin(), digits.end(), ::isdigit)) continue;
    out.emplace_back(std::stoull(digits), entry.path());
  }
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  return out;
}

void append_floats(std::vector<std::uint8_t>* buf, const std::vector<float>& v) {
  if (v.empty()) return;
  const auto* p = reinterpret_cast<const std::uint8_t*>(v.data());
  buf->insert(buf->end(), p, p + 4 * v.size());
}

std::vector<std::uint8_t> read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<std::uint8_t>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

/// Writes buf to final_path atomically (temp file, fsync, rename), then removes the
/// files of the same prefix beyond the newest `keep`.
void write_and_prune(const fs::path& final_path, const std::vector<std::uint8_t>& buf, const std::string& pre,
                     unsigned keep) {
  const fs::path tmp_path = fs::path(final_path.string() + ".tmp");
  {
    const int fd = ::open(tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) throw std::runtime_error("checkpoint: cannot create " + tmp_path.string() + ": " + std::strerror(errno));
    std::size_t done = 0;
    while (done < buf.size()) {
      const ssize_t w = ::write(fd, buf.data() + done, buf.size() - done);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) {
        const int err = errno;
        ::close(fd);
        throw std::runtime_error("checkpoint: write " + tmp_path.string() + ": " + std::strerror(err));
      }
      done += static_cast<std::size_t>(w);
    }
    ::fsync(fd);
    ::close(fd);
  }
  fs::rename(tmp_path, final_path);
  const auto all = list_checkpoints(final_path.parent_path().string(), pre);
  for (std::size_t i = keep; i < all.size(); ++i) {
    std::error_code ec;
    fs::remove(all[i].second, ec);
  }
}

}  // namespace

std::string write_checkpoint(const std::string& dir, const ShardCheckpoint& c, unsigned keep) {
  fs::create_directories(dir);
  const std::uint64_t n = c.params.size();
  if (c.momentum.size() != n || c.replica.size() != n) throw std::invalid_argument("checkpoint: buffer sizes differ");
  std::vector<std::uint8_t> buf(kCkptHeader);
  store_le<std::uint32_t>(buf.data() + 0, kCkptMagic);
  store_le<std::uint32_t>(buf.data() + 4, kCkptFormat);
  store_le<std::uint32_t>(buf.data() + 8, c.shard_id);
  store_le<std::uint32_t>(buf.data() + 12, c.num_shards);
  store_le<std::uint64_t>(buf.data() + 16, c.version);
  store_le<std::uint64_t>(buf.data() + 24, n);
  store_le<std::uint64_t>(buf.data() + 32, c.signature_hash);
  buf.reserve(kCkptHeader + 12 * n + 8);
  append_floats(&buf, c.params);
  append_floats(&buf, c.momentum);
  append_floats(&buf, c.replica);
  const std::uint64_t sum = XXH3_64bits(buf.data(), buf.size());
  buf.resize(buf.size() + 8);
  store_le<std::uint64_t>(buf.data() + buf.size() - 8, sum);

  const fs::path final_path = fs::path(dir) / fmt::format("{}{:012d}.ckpt", prefix(c.shard_id), c.version);
  write_and_prune(final_path, buf, prefix(c.shard_id), keep);
  return final_path.string();
}

bool load_newest_checkpoint(const std::string& dir, std::uint32_t shard_id, std::uint32_t num_shards,
                            std::uint64_t signature_hash, std::uint64_t n, ShardCheckpoint* out,
                            std::vector<std::string>* skipped, std::uint64_t max_version) {
  for (const auto& entry : list_checkpoints(dir, prefix(shard_id))) {
    if (entry.first > max_version) continue;
    // A named reference, not a structured binding: lambdas may capture bindings only from
    // C++20 on (clang refuses it in C++17).
    const fs::path& path = entry.second;
    const std::vector<std::uint8_t> buf = read_bytes(path);
    auto skip = [&](const std::string& why) { skipped->push_back(path.string() + ": " + why); };
    const std::size_t want = kCkptHeader + 12 * n + 8;
    if (buf.size() != want) {
      skip(fmt::format("size {} bytes, expected {}", buf.size(), want));
      continue;
    }
    const std::uint64_t stored = load_le<std::uint64_t>(buf.data() + buf.size() - 8);
    if (XXH3_64bits(buf.data(), buf.size() - 8) != stored) {
      skip("checksum mismatch (corrupt)");
      continue;
    }
    if (load_le<std::uint32_t>(buf.data()) != kCkptMagic || load_le<std::uint32_t>(buf.data() + 4) != kCkptFormat) {
      skip("not a gradzip checkpoint v1");
      continue;
    }
    if (load_le<std::uint32_t>(buf.data() + 8) != shard_id || load_le<std::uint32_t>(buf.data() + 12) != num_shards ||
        load_le<std::uint64_t>(buf.data() + 24) != n) {
      skip("written for another shard layout");
      continue;
    }
    if (load_le<std::uint64_t>(buf.data() + 32) != signature_hash) {
      skip("written for another model signature");
      continue;
    }
    ShardCheckpoint c;
    c.shard_id = shard_id;
    c.num_shards = num_shards;
    c.version = load_le<std::uint64_t>(buf.data() + 16);
    c.signature_hash = signature_hash;
    for (auto* v : {&c.params, &c.momentum, &c.replica}) v->resize(n);
    const std::uint8_t* p = buf.data() + kCkptHeader;
    if (n != 0) {
      std::memcpy(c.params.data(), p, 4 * n);
      std::memcpy(c.momentum.data(), p + 4 * n, 4 * n);
      std::memcpy(c.replica.data(), p + 8 * n, 4 * n);
    }
    *out = std::move(c);
    return true;
  }
  return false;
}

std::uint64_t signature_hash(const ModelSignature& signature) {
  const std::string json = signature_to_json(signature);
  return XXH3_64bits(json.data(), json.size());
}

std::string worker_checkpoint_path(const std::string& dir, std::uint32_t worker, std::uint64_t step) {
  return (fs::path(dir) / fmt::format("{}{:012d}.ckpt", worker_prefix(worker), step)).string();
}

std::string write_worker_checkpoint(const std::string& dir, const WorkerCheckpoint& c, unsigned keep) {
  fs::create_directories(dir);
  std::vector<std::uint8_t> buf(kWorkerHeader);
  store_le<std::uint32_t>(buf.data() + 0, kWorkerMagic);
  store_le<std::uint32_t>(buf.data() + 4, kWorkerFormat);
  store_le<std::uint32_t>(buf.data() + 8, c.worker);
  store_le<std::uint32_t>(buf.data() + 12, c.num_workers);
  store_le<std::uint64_t>(buf.data() + 16, c.step);
  store_le<std::uint64_t>(buf.data() + 24, c.signature_hash);
  store_le<std::uint32_t>(buf.data() + 32, static_cast<std::uint32_t>(c.memory.size()));
  store_le<std::uint64_t>(buf.data() + 36, c.model_state.size());
  store_le<std::uint64_t>(buf.data() + 44, c.transport_state.size());
  for (const auto& m : c.memory) quant::serialize_memory_state(m, &buf);
  buf.insert(buf.end(), c.model_state.begin(), c.model_state.end());
  buf.insert(buf.end(), c.transport_state.begin(), c.transport_state.end());
  const std::uint64_t sum = XXH3_64bits(buf.data(), buf.size());
  buf.resize(buf.size() + 8);
  store_le<std::uint64_t>(buf.data() + buf.size() - 8, sum);
  const std::string path = worker_checkpoint_path(dir, c.worker, c.step);
  write_and_prune(path, buf, worker_prefix(c.worker), keep);
  return path;
}

WorkerCheckpoint load_worker_checkpoint(const std::string& dir, std::uint32_t worker, std::uint32_t num_workers,
                                        std::uint64_t step, std::uint64_t signature_hash,
                                        const std::vector<std::uint64_t>& bucket_numel) {
  using Kind = CheckpointError::Kind;
  const std::string path = worker_checkpoint_path(dir, worker, step);
  std::error_code ec;
  if (!fs::is_regular_file(path, ec)) throw CheckpointError(Kind::kMissing, path, "worker checkpoint missing");
  const std::vector<std::uint8_t> buf = read_bytes(path);
  if (buf.size() < kWorkerHeaderV1 + 8) {
    throw CheckpointError(Kind::kCorrupt, path, fmt::format("{} bytes, shorter than a header", buf.size()));
  }
  const std::size_t body = buf.size() - 8;
  if (XXH3_64bits(buf.data(), body) != load_le<std::uint64_t>(buf.data() + body)) {
    throw CheckpointError(Kind::kCorrupt, path, "checksum mismatch (corrupt)");
  }
  const std::uint32_t format = load_le<std::uint32_t>(buf.data() + 4);
  if (load_le<std::uint32_t>(buf.data()) != kWorkerMagic || (format != 1 && format != kWorkerFormat) ||
      (format == kWorkerFormat && body < kWorkerHeader)) {
    throw CheckpointError(Kind::kCorrupt, path, "not a gradzip worker checkpoint v1 or v2");
  }
  const std::uint64_t transport_bytes = format == 1 ? 0 : load_le<std::uint64_t>(buf.data() + 44);
  WorkerCheckpoint c;
  c.worker = load_le<std::uint32_t>(buf.data() + 8);
  c.num_workers = load_le<std::uint32_t>(buf.data() + 12);
  c.step = load_le<std::uint64_t>(buf.data() + 16);
  c.signature_hash = load_le<std::uint64_t>(buf.data() + 24);
  const std::uint32_t buckets = load_le<std::uint32_t>(buf.data() + 32);
  const std::uint64_t model_bytes = load_le<std::uint64_t>(buf.data() + 36);
  if (c.worker != worker || c.step != step) {
    throw CheckpointError(Kind::kCorrupt, path, fmt::format("holds worker {} step {}", c.worker, c.step));
  }
  if (c.num_workers != num_workers) {
    throw CheckpointError(Kind::kMismatch, path,
                          fmt::format("written by a run of {} workers, this run has {}", c.num_workers, num_workers));
  }
  if (c.signature_hash != signature_hash) {
    throw CheckpointError(Kind::kMismatch, path, "written for another model signature");
  }
  if (buckets != bucket_numel.size()) {
    throw CheckpointError(Kind::kMismatch, path,
                          fmt::format("holds {} buckets, this layout has {}", buckets, bucket_numel.size()));
  }
  std::size_t pos = format == 1 ? kWorkerHeaderV1 : kWorkerHeader;
  c.memory.resize(buckets);
  for (std::uint32_t b = 0; b < buckets; ++b) {
    std::size_t used = 0;
    const quant::Status st =
        quant::restore_memory_state(buf.data() + pos, body - pos, bucket_numel[b], &c.memory[b], &used);
    if (!st.ok()) throw CheckpointError(Kind::kCorrupt, path, fmt::format("bucket {}: {}", b, st.to_string()));
    pos += used;
  }
  if (transport_bytes > body - pos || body - pos - transport_bytes != model_bytes) {
    throw CheckpointError(Kind::kCorrupt, path,
                          fmt::format("model state of {} and transport state of {} bytes declared, {} present",
                                      model_bytes, transport_bytes, body - pos));
  }
  const auto at = [&](std::size_t i) { return buf.begin() + static_cast<std::ptrdiff_t>(i); };
  c.model_state.assign(at(pos), at(pos + model_bytes));
  c.transport_state.assign(at(pos + model_bytes), at(body));
  return c;
}

ResumePoint find_resume_point(const std::string& dir, const CheckpointShape& shape, std::uint64_t max_step) {
  using Kind = CheckpointError::Kind;
  const auto num_shards = static_cast<std::uint32_t>(shape.shard_numel.size());
  auto candidates = list_checkpoints(dir, prefix(0));
  candidates.erase(std::remove_if(candidates.begin(), candidates.end(),
                                  [max_step](const auto& c) { return c.first > max_step; }),
                   candidates.end());
  if (num_shards == 0 || candidates.empty()) {
    throw CheckpointError(Kind::kMissing, dir,
                          max_step == UINT64_MAX
                              ? "no shard checkpoint (was the run started with --checkpoint-every?)"
                              : fmt::format("no shard checkpoint of a step <= {} (was the run started with "
                                            "--checkpoint-every?)", max_step));
  }
  ResumePoint r;
  for (const auto& candidate : candidates) {
    const std::uint64_t step = candidate.first;
    const std::size_t before = r.skipped.size();
    for (std::uint32_t s = 0; s < num_shards; ++s) {
      ShardCheckpoint c;
      std::vector<std::string> problems;
      const bool found = load_newest_checkpoint(dir, s, num_shards, shape.signature_hash, shape.shard_numel[s], &c,
                                                &problems, step);
      for (auto& p : problems) {
        if (p.find(fmt::format("{:012d}.ckpt", step)) != std::string::npos) r.skipped.push_back(std::move(p));
      }
      if (!found || c.version != step) {
        const std::string want = (fs::path(dir) / fmt::format("{}{:012d}.ckpt", prefix(s), step)).string();
        if (!fs::exists(want)) r.skipped.push_back(want + ": shard checkpoint missing");
      }
    }
    for (std::uint32_t w = 0; w < shape.num_workers; ++w) {
      try {
        load_worker_checkpoint(dir, w, shape.num_workers, step, shape.signature_hash, shape.bucket_numel);
      } catch (const CheckpointError& e) {
        r.skipped.push_back(e.what());
      }
    }
    if (r.skipped.size() == before) {
      r.step = step;
      return r;
    }
  }
  // No complete step: a worker file of the newest step keeps its own kind and path.
  const std::uint64_t newest = candidates.front().first;
  const std::string context = fmt::format(" (no step has a valid checkpoint of all {} shards and {} workers; newest {})",
                                          num_shards, shape.num_workers, newest);
  for (std::uint32_t w = 0; w < shape.num_workers; ++w) {
    try {
      load_worker_checkpoint(dir, w, shape.num_workers, newest, shape.signature_hash, shape.bucket_numel);
    } catch (const CheckpointError& e) {
      const std::string what = e.what();
      throw CheckpointError(e.kind(), e.path(), what.substr(e.path().size() + 2) + context);
    }
  }
  throw CheckpointError(Kind::kCorrupt, dir, r.skipped.front() + context);
}

}  // namespace gradzip::comm
