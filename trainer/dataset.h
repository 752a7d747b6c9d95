// In-memory image classification data sets and their readers (no torch).
//
// Images are stored as uint8, channel-major (CHW) per image, images back to back:
// pixel (c, y, x) of image i is images[((i * C + c) * H + y) * W + x]. Labels are class
// indices in [0, classes). Readers validate every size and label and throw DataError
// naming the file and the problem; they never abort.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gradzip::trainer {

/// A labelled image set held in memory (layout above). Copyable value type.
struct Dataset {
  std::string name;
  int channels = 0;
  int height = 0;
  int width = 0;
  int classes = 0;
  std::vector<std::uint8_t> images;   ///< size() * image_bytes() bytes, CHW per image
  std::vector<std::int32_t> labels;   ///< size() entries in [0, classes)

  std::size_t size() const { return labels.size(); }
  std::size_t image_bytes() const {
    return static_cast<std::size_t>(channels) * static_cast<std::size_t>(height) * static_cast<std::size_t>(width);
  }
  const std::uint8_t* image(std::size_t i) const { return images.data() + i * image_bytes(); }
};

/// Train and test halves of one data set.
struct DataSplit {
  Dataset train;
  Dataset test;
};

/// An IDX array (LeCun's MNIST format): big-endian magic 0x0000 <type> <ndims>, ndims
/// big-endian uint32 sizes, then the data. Only unsigned-byte data (type 0x08) is read.
struct IdxArray {
  std::vector<std::uint32_t> dims;
  std::vector<std::uint8_t> data;
};

/// Reads an IDX file, gzip-compressed (".gz", detected by content) or plain. Throws
/// DataError: missing file, bad magic, unsupported type, truncated or oversized data.
IdxArray read_idx(const std::string& path);

/// Reads an IDX image file (N x H x W) and its label file (N) into a 1-channel Dataset.
/// Throws DataError on a count mismatch or a label >= classes.
Dataset read_idx_dataset(const std::string& images_path, const std::string& labels_path, int classes = 10);

/// Reads CIFAR binary batches (Krizhevsky 2009): CIFAR-10 records are 1 label byte +
/// 3072 pixel bytes; CIFAR-100 records are 2 label bytes (coarse, fine; the fine label is
/// used) + 3072. `classes` is 10 or 100. Throws DataError if a file's size is not a
/// multiple of the record size or a label is out of range.
Dataset read_cifar_binary(const std::vector<std::string>& paths, int classes);

/// Settings of the synthetic generator: each class has a random smooth prototype image;
/// samples are prototype + Gaussian noise (learnable but not trivial with noise > 0).
struct SyntheticOptions {
  int channels = 3;
  int height = 32;
  int width = 32;
  int classes = 10;
  std::size_t train_size = 2048;
  std::size_t test_size = 512;
  double noise = 40.0;          ///< noise standard deviation, in pixel levels (0..255)
  std::uint64_t seed = 1;
};
DataSplit make_synthetic(const SyntheticOptions& options);

/// Loads a named data set from `dir`: "mnist" / "fashion-mnist" (the four IDX files,
/// gzip or plain), "cifar10" (data_batch_1..5.bin, test_batch.bin), "cifar100"
/// (train.bin, test.bin). Throws DataError naming the missing file, ConfigError for an
/// unknown name.
DataSplit load_dataset(const std::string& name, const std::string& dir);

/// The first n images of `d` (all of them when n == 0 or n >= size()).
Dataset take_first(const Dataset& d, std::size_t n);

/// Per-channel mean and standard deviation of the pixels, on the 0..1 scale.
struct ChannelStats {
  std::vector<float> mean;
  std::vector<float> stddev;
};
ChannelStats channel_stats(const Dataset& d, std::size_t max_images = 10000);

}  // namespace gradzip::trainer
