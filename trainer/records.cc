#include "trainer/records.h"

#include <xxhash.h>

#include <cstdio>
#include <cstring>
#include <filesystem>

#include "trainer/errors.h"

namespace gradzip::trainer {
namespace {

constexpr char kMagic[8] = {'G', 'Z', 'R', 'E', 'C', '0', '0', '1'};
constexpr std::uint32_t kVersion = 1;
constexpr std::size_t kHeaderBytes = 32;

void put32(std::uint8_t* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint32_t get32(const std::uint8_t* p) {
  return std::uint32_t{p[0]} | (std::uint32_t{p[1]} << 8) | (std::uint32_t{p[2]} << 16) | (std::uint32_t{p[3]} << 24);
}
void put64(std::uint8_t* p, std::uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<std::uint8_t>(v >> (8 * i));
}
std::uint64_t get64(const std::uint8_t* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

std::string shard_name(const std::string& dir, const std::string& prefix, std::size_t i) {
  char num[16];
  std::snprintf(num, sizeof(num), "%05zu", i);
  return dir + "/" + prefix + "-" + num + ".gzr";
}

/// Checksum of a record: the 8 bytes of (payload_bytes, label) followed by the payload.
std::uint64_t record_checksum(const std::uint8_t* len_label, const std::uint8_t* payload, std::size_t n) {
  XXH3_state_t* st = XXH3_createState();
  XXH3_64bits_reset(st);
  XXH3_64bits_update(st, len_label, 8);
  XXH3_64bits_update(st, payload, n);
  const std::uint64_t h = XXH3_64bits_digest(st);
  XXH3_freeState(st);
  return h;
}

}  // namespace

std::vector<std::string> pack_records(const Dataset& d, const std::string& out_dir, const std::string& prefix,
                                      std::size_t shard_bytes) {
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) throw DataError(out_dir, "cannot create directory: " + ec.message());
  const std::size_t rec_bytes = 4 + 4 + d.image_bytes() + 8;
  const std::size_t per_shard = std::max<std::size_t>(1, shard_bytes / rec_bytes);
  std::vector<std::string> paths;
  std::vector<std::uint8_t> buf;
  for (std::size_t first = 0, shard = 0; first < d.size(); first += per_shard, ++shard) {
    const std::size_t n = std::min(per_shard, d.size() - first);
    buf.assign(kHeaderBytes + n * rec_bytes, 0);
    std::memcpy(buf.data(), kMagic, 8);
    put32(buf.data() + 8, kVersion);
    put32(buf.data() + 12, static_cast<std::uint32_t>(d.channels));
    put32(buf.data() + 16, static_cast<std::uint32_t>(d.height));
    put32(buf.data() + 20, static_cast<std::uint32_t>(d.width));
    put32(buf.data() + 24, static_cast<std::uint32_t>(d.classes));
    put32(buf.data() + 28, static_cast<std::uint32_t>(n));
    std::uint8_t* p = buf.data() + kHeaderBytes;
    for (std::size_t i = 0; i < n; ++i, p += rec_bytes) {
      put32(p, static_cast<std::uint32_t>(d.image_bytes()));
      put32(p + 4, static_cast<std::uint32_t>(d.labels[first + i]));
      std::memcpy(p + 8, d.image(first + i), d.image_bytes());
      put64(p + 8 + d.image_bytes(), record_checksum(p, p + 8, d.image_bytes()));
    }
    const std::string path = shard_name(out_dir, prefix, shard);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(buf.data()), static_cast<std::streamsize>(buf.size()));
    if (!out) throw DataError(path, "write failed");
    paths.push_back(path);
  }
  return paths;
}

RecordReader::RecordReader(const std::string& path) : path_(path), in_(path, std::ios::binary) {
  if (!in_) throw DataError(path, "cannot open record shard");
  std::uint8_t h[kHeaderBytes];
  if (!in_.read(reinterpret_cast<char*>(h), kHeaderBytes)) throw DataError(path, "truncated record shard header");
  if (std::memcmp(h, kMagic, 8) != 0) throw DataError(path, "not a gradzip record shard (bad magic)");
  if (get32(h + 8) != kVersion) throw DataError(path, "unsupported record version " + std::to_string(get32(h + 8)));
  channels_ = static_cast<int>(get32(h + 12));
  height_ = static_cast<int>(get32(h + 16));
  width_ = static_cast<int>(get32(h + 20));
  classes_ = static_cast<int>(get32(h + 24));
  count_ = get32(h + 28);
  if (channels_ <= 0 || height_ <= 0 || width_ <= 0 || classes_ <= 0 || channels_ > 64 || height_ > 65536 ||
      width_ > 65536) {
    throw DataError(path, "implausible image shape in record shard header");
  }
  // The header's record count and shape fix the file size exactly: check it before any
  // reader sizes a buffer from them (a corrupt count must not become a huge allocation).
  const std::uint64_t record_bytes = 16 + static_cast<std::uint64_t>(channels_) * height_ * width_;
  in_.seekg(0, std::ios::end);
  const auto file_bytes = static_cast<std::uint64_t>(in_.tellg());
  in_.seekg(kHeaderBytes, std::ios::beg);
  if (!in_ || file_bytes < kHeaderBytes || (file_bytes - kHeaderBytes) / record_bytes != count_ ||
      (file_bytes - kHeaderBytes) % record_bytes != 0) {
    throw DataError(path, "header promises " + std::to_string(count_) + " records of " + std::to_string(record_bytes) +
                              " bytes, but the file has " + std::to_string(file_bytes) + " bytes");
  }
}

bool RecordReader::next(Record* r) {
  if (read_ == count_) return false;
  const std::string where = "record " + std::to_string(read_);
  std::uint8_t ll[8];
  if (!in_.read(reinterpret_cast<char*>(ll), 8)) throw DataError(path_, where + " is truncated (length/label)");
  const std::uint32_t n = get32(ll);
  const std::size_t expect = static_cast<std::size_t>(channels_) * height_ * width_;
  if (n != expect) {
    throw DataError(path_, where + " has " + std::to_string(n) + " payload bytes, expected " + std::to_string(expect));
  }
  r->pixels.resize(n);
  std::uint8_t sum[8];
  if (!in_.read(reinterpret_cast<char*>(r->pixels.data()), n) || !in_.read(reinterpret_cast<char*>(sum), 8)) {
    throw DataError(path_, where + " is truncated (payload/checksum)");
  }
  if (get64(sum) != record_checksum(ll, r->pixels.data(), n)) throw DataError(path_, where + " checksum mismatch");
  const std::uint32_t label = get32(ll + 4);
  if (label >= static_cast<std::uint32_t>(classes_)) {
    throw DataError(path_, where + " label " + std::to_string(label) + " >= classes " + std::to_string(classes_));
  }
  r->label = static_cast<std::int32_t>(label);
  ++read_;
  return true;
}

std::vector<std::string> list_record_shards(const std::string& dir, const std::string& prefix) {
  std::vector<std::string> out;
  for (std::size_t i = 0;; ++i) {
    const std::string p = shard_name(dir, prefix, i);
    if (!std::filesystem::exists(p)) break;
    out.push_back(p);
  }
  return out;
}

Dataset read_records(const std::vector<std::string>& shard_paths) {
  if (shard_paths.empty()) throw DataError("(no shards)", "no record shards given");
  Dataset d;
  d.name = "records";
  Record r;
  for (const std::string& path : shard_paths) {
    RecordReader reader(path);
    if (d.channels == 0) {
      d.channels = reader.channels();
      d.height = reader.height();
      d.width = reader.width();
      d.classes = reader.classes();
    } else if (reader.channels() != d.channels || reader.height() != d.height || reader.width() != d.width ||
               reader.classes() != d.classes) {
      throw DataError(path, "image shape or class count differs from the first shard " + shard_paths.front());
    }
    d.images.reserve(d.images.size() + static_cast<std::size_t>(reader.record_count()) * d.image_bytes());
    while (reader.next(&r)) {
      d.labels.push_back(r.label);
      d.images.insert(d.images.end(), r.pixels.begin(), r.pixels.end());
    }
  }
  return d;
}

}  // namespace gradzip::trainer
