// Sharded record files: `gradzip pack` output, read back sequentially by the loader.
//
// The TFRecord idea (one large sequential file instead of many small ones, each record
// length-prefixed and checksummed), applied to fixed-size image records. A data set is
// written as shards "<prefix>-00000.gzr", "<prefix>-00001.gzr", ... of about
// `shard_bytes` each. Layout of one shard (little-endian):
//
//   header (32 bytes): magic "GZREC001" (8) | version u32 = 1 | channels u32 | height u32 |
//                      width u32 | classes u32 | record_count u32
//   record (repeated): payload_bytes u32 | label u32 | payload (CHW uint8) |
//                      checksum u64 = XXH3-64 of (payload_bytes, label, payload)
//
// Readers validate the header, every length and every checksum, and throw DataError
// naming the shard and the record index on any mismatch.
#pragma once

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <string>
#include <vector>

#include "trainer/dataset.h"

namespace gradzip::trainer {

/// Writes `d` as shards into `out_dir` (created if missing) and returns their paths.
/// Throws DataError when a file cannot be written.
std::vector<std::string> pack_records(const Dataset& d, const std::string& out_dir, const std::string& prefix,
                                      std::size_t shard_bytes = 4u << 20);

/// One record as read from a shard.
struct Record {
  std::int32_t label = 0;
  std::vector<std::uint8_t> pixels;
};

/// Sequential reader of one shard. Not thread-safe; one reader per thread.
class RecordReader {
 public:
  /// Opens `path` and validates its header. Throws DataError.
  explicit RecordReader(const std::string& path);
  /// Reads the next record into *r; false at the end. Throws DataError on a bad length,
  /// a truncated record or a checksum mismatch.
  bool next(Record* r);
  int channels() const { return channels_; }
  int height() const { return height_; }
  int width() const { return width_; }
  int classes() const { return classes_; }
  std::uint32_t record_count() const { return count_; }

 private:
  std::string path_;
  std::ifstream in_;
  int channels_ = 0, height_ = 0, width_ = 0, classes_ = 0;
  std::uint32_t count_ = 0;
  std::uint32_t read_ = 0;
};

/// The shard paths "<dir>/<prefix>-NNNNN.gzr" that exist, in order.
std::vector<std::string> list_record_shards(const std::string& dir, const std::string& prefix);

/// Reads every record of every shard into one Dataset (shards must agree on shape).
Dataset read_records(const std::vector<std::string>& shard_paths);

}  // namespace gradzip::trainer
