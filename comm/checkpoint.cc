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

#include "quant/wire.h"

namespace gradzip::comm {
namespace fs = std::filesystem;
using quant::load_le;
using quant::store_le;

namespace {
constexpr std::uint32_t kCkptMagic = 0x4B435A47u;  // "GZCK"
constexpr std::uint32_t kCkptFormat = 1;
constexpr std::size_t kCkptHeader = 40;

std::string prefix(std::uint32_t shard) { return fmt::format("shard-{}-step-", shard); }

// Checkpoints of `shard` in `dir`, newest (highest step) first.
std::vector<std::pair<std::uint64_t, fs::path>> list_checkpoints(const std::string& dir, std::uint32_t shard) {
  std::vector<std::pair<std::uint64_t, fs::path>> out;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return out;
  const std::string pre = prefix(shard);
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
  const auto all = list_checkpoints(dir, c.shard_id);
  for (std::size_t i = keep; i < all.size(); ++i) {
    std::error_code ec;
    fs::remove(all[i].second, ec);
  }
  return final_path.string();
}

bool load_newest_checkpoint(const std::string& dir, std::uint32_t shard_id, std::uint32_t num_shards,
                            std::uint64_t signature_hash, std::uint64_t n, ShardCheckpoint* out,
                            std::vector<std::string>* skipped) {
  for (const auto& entry : list_checkpoints(dir, shard_id)) {
    // A named reference, not a structured binding: lambdas may capture bindings only from
    // C++20 on (clang refuses it in C++17).
    const fs::path& path = entry.second;
    std::ifstream in(path, std::ios::binary);
    std::vector<std::uint8_t> buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
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

}  // namespace gradzip::comm
