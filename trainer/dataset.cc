#include "trainer/dataset.h"

#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <random>

#include "trainer/errors.h"

namespace gradzip::trainer {
namespace {

struct GzCloser {
  void operator()(gzFile_s* f) const { gzclose(f); }
};

/// Whole file contents; gzip is decompressed transparently (zlib passes plain files
/// through unchanged), so "x.gz" and "x" read the same.
std::vector<std::uint8_t> read_maybe_gzip(const std::string& path) {
  std::unique_ptr<gzFile_s, GzCloser> f(gzopen(path.c_str(), "rb"));
  if (!f) throw DataError(path, "cannot open file");
  std::vector<std::uint8_t> out;
  std::uint8_t chunk[1 << 16];
  for (;;) {
    const int got = gzread(f.get(), chunk, sizeof(chunk));
    if (got < 0) {
      int errnum = 0;
      const char* msg = gzerror(f.get(), &errnum);
      throw DataError(path, std::string("corrupt gzip stream: ") + (msg ? msg : "unknown zlib error"));
    }
    if (got == 0) break;
    out.insert(out.end(), chunk, chunk + got);
  }
  // A gzip file cut short reads as a short stream without error in some zlib versions;
  // gzerror reports Z_BUF_ERROR for an unexpected end of the compressed data.
  int errnum = 0;
  gzerror(f.get(), &errnum);
  if (errnum == Z_BUF_ERROR) throw DataError(path, "truncated gzip stream");
  return out;
}

std::uint32_t be32(const std::uint8_t* p) {
  return (std::uint32_t{p[0]} << 24) | (std::uint32_t{p[1]} << 16) | (std::uint32_t{p[2]} << 8) | std::uint32_t{p[3]};
}

bool file_exists(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return static_cast<bool>(f);
}

/// `dir/name` if it exists, else `dir/name.gz` if that exists, else throws naming both.
std::string find_file(const std::string& dir, const std::string& name) {
  const std::string plain = dir + "/" + name;
  if (file_exists(plain)) return plain;
  if (file_exists(plain + ".gz")) return plain + ".gz";
  throw DataError(plain, "file not found (also tried " + plain + ".gz)");
}

}  // namespace

IdxArray read_idx(const std::string& path) {
  const std::vector<std::uint8_t> bytes = read_maybe_gzip(path);
  if (bytes.size() < 4) throw DataError(path, "too short for an IDX header (" + std::to_string(bytes.size()) + " bytes)");
  if (bytes[0] != 0 || bytes[1] != 0) throw DataError(path, "bad IDX magic (first two bytes must be zero)");
  if (bytes[2] != 0x08) {
    throw DataError(path, "unsupported IDX element type 0x" + std::to_string(bytes[2]) + " (only unsigned byte, 0x08)");
  }
  const std::size_t ndims = bytes[3];
  if (ndims == 0 || ndims > 4) throw DataError(path, "unsupported IDX rank " + std::to_string(ndims));
  const std::size_t header = 4 + 4 * ndims;
  if (bytes.size() < header) throw DataError(path, "truncated IDX header");
  IdxArray a;
  std::uint64_t count = 1;
  bool overflow = false;  // four 32-bit sizes can multiply past 2^64 and wrap to the byte count
  for (std::size_t d = 0; d < ndims; ++d) {
    a.dims.push_back(be32(bytes.data() + 4 + 4 * d));
    overflow = __builtin_mul_overflow(count, std::uint64_t{a.dims.back()}, &count) || overflow;
  }
  if (overflow) throw DataError(path, "IDX sizes multiply to more than 2^64 elements");
  const std::uint64_t have = bytes.size() - header;
  if (have != count) {
    throw DataError(path, "IDX data has " + std::to_string(have) + " bytes but the header promises " +
                              std::to_string(count) + (have < count ? " (truncated)" : " (trailing bytes)"));
  }
  a.data.assign(bytes.begin() + static_cast<std::ptrdiff_t>(header), bytes.end());
  return a;
}

Dataset read_idx_dataset(const std::string& images_path, const std::string& labels_path, int classes) {
  IdxArray img = read_idx(images_path);
  IdxArray lab = read_idx(labels_path);
  if (img.dims.size() != 3) throw DataError(images_path, "expected a rank-3 IDX image file (N x H x W)");
  if (lab.dims.size() != 1) throw DataError(labels_path, "expected a rank-1 IDX label file");
  if (img.dims[1] == 0 || img.dims[2] == 0 || img.dims[1] > 65536 || img.dims[2] > 65536) {
    throw DataError(images_path, "image size " + std::to_string(img.dims[1]) + " x " + std::to_string(img.dims[2]) +
                                     " is outside 1..65536");
  }
  if (img.dims[0] != lab.dims[0]) {
    throw DataError(labels_path, "has " + std::to_string(lab.dims[0]) + " labels but " + images_path + " has " +
                                     std::to_string(img.dims[0]) + " images");
  }
  Dataset d;
  d.name = "idx";
  d.channels = 1;
  d.height = static_cast<int>(img.dims[1]);
  d.width = static_cast<int>(img.dims[2]);
  d.classes = classes;
  d.images = std::move(img.data);
  d.labels.resize(lab.data.size());
  for (std::size_t i = 0; i < lab.data.size(); ++i) {
    if (lab.data[i] >= classes) {
      throw DataError(labels_path, "label " + std::to_string(lab.data[i]) + " at index " + std::to_string(i) +
                                       " is not below the class count " + std::to_string(classes));
    }
    d.labels[i] = lab.data[i];
  }
  return d;
}

Dataset read_cifar_binary(const std::vector<std::string>& paths, int classes) {
  if (classes != 10 && classes != 100) throw ConfigError("CIFAR classes must be 10 or 100, got " + std::to_string(classes));
  const std::size_t label_bytes = classes == 10 ? 1 : 2;
  const std::size_t pixels = 3 * 32 * 32;
  const std::size_t record = label_bytes + pixels;
  Dataset d;
  d.name = classes == 10 ? "cifar10" : "cifar100";
  d.channels = 3;
  d.height = 32;
  d.width = 32;
  d.classes = classes;
  for (const std::string& path : paths) {
    const std::vector<std::uint8_t> bytes = read_maybe_gzip(path);
    if (bytes.empty() || bytes.size() % record != 0) {
      throw DataError(path, std::to_string(bytes.size()) + " bytes is not a positive multiple of the CIFAR-" +
                                std::to_string(classes) + " record size " + std::to_string(record));
    }
    const std::size_t n = bytes.size() / record;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint8_t* r = bytes.data() + i * record;
      const int label = r[label_bytes - 1];  // CIFAR-100: fine label is the second byte
      if (label >= classes) {
        throw DataError(path, "record " + std::to_string(i) + " has label " + std::to_string(label) +
                                  " (classes: " + std::to_string(classes) + ")");
      }
      d.labels.push_back(label);
      d.images.insert(d.images.end(), r + label_bytes, r + record);
    }
  }
  return d;
}

DataSplit make_synthetic(const SyntheticOptions& o) {
  if (o.channels <= 0 || o.height <= 0 || o.width <= 0 || o.classes < 2) {
    throw ConfigError("synthetic data set needs positive channels/height/width and at least 2 classes");
  }
  std::mt19937_64 rng(o.seed);
  const std::size_t img = static_cast<std::size_t>(o.channels) * o.height * o.width;
  // Smooth prototypes: a few random low-frequency cosines per class and channel.
  std::vector<float> proto(static_cast<std::size_t>(o.classes) * img);
  std::uniform_real_distribution<float> u(0.f, 1.f);
  for (int k = 0; k < o.classes; ++k) {
    for (int c = 0; c < o.channels; ++c) {
      const float fx = 1.f + 3.f * u(rng), fy = 1.f + 3.f * u(rng), ph = 6.283f * u(rng), amp = 60.f + 40.f * u(rng);
      for (int y = 0; y < o.height; ++y) {
        for (int x = 0; x < o.width; ++x) {
          const float v = 128.f + amp * std::cos(fx * 6.283f * x / o.width + fy * 6.283f * y / o.height + ph);
          proto[static_cast<std::size_t>(k) * img + (static_cast<std::size_t>(c) * o.height + y) * o.width + x] = v;
        }
      }
    }
  }
  auto fill = [&](Dataset& d, std::size_t n) {
    d.name = "synthetic";
    d.channels = o.channels;
    d.height = o.height;
    d.width = o.width;
    d.classes = o.classes;
    d.images.resize(n * img);
    d.labels.resize(n);
    std::normal_distribution<float> noise(0.f, static_cast<float>(o.noise));
    for (std::size_t i = 0; i < n; ++i) {
      const int k = static_cast<int>(i % static_cast<std::size_t>(o.classes));
      d.labels[i] = k;
      for (std::size_t p = 0; p < img; ++p) {
        const float v = proto[static_cast<std::size_t>(k) * img + p] + noise(rng);
        d.images[i * img + p] = static_cast<std::uint8_t>(std::clamp(v, 0.f, 255.f));
      }
    }
  };
  DataSplit s;
  fill(s.train, o.train_size);
  fill(s.test, o.test_size);
  return s;
}

DataSplit load_dataset(const std::string& name, const std::string& dir) {
  DataSplit s;
  if (name == "mnist" || name == "fashion-mnist") {
    s.train = read_idx_dataset(find_file(dir, "train-images-idx3-ubyte"), find_file(dir, "train-labels-idx1-ubyte"));
    s.test = read_idx_dataset(find_file(dir, "t10k-images-idx3-ubyte"), find_file(dir, "t10k-labels-idx1-ubyte"));
  } else if (name == "cifar10") {
    std::vector<std::string> train;
    for (int b = 1; b <= 5; ++b) train.push_back(find_file(dir, "data_batch_" + std::to_string(b) + ".bin"));
    s.train = read_cifar_binary(train, 10);
    s.test = read_cifar_binary({find_file(dir, "test_batch.bin")}, 10);
  } else if (name == "cifar100") {
    s.train = read_cifar_binary({find_file(dir, "train.bin")}, 100);
    s.test = read_cifar_binary({find_file(dir, "test.bin")}, 100);
  } else {
    throw ConfigError("unknown data set '" + name + "'; allowed: mnist|fashion-mnist|cifar10|cifar100|synthetic|records");
  }
  s.train.name = s.test.name = name;
  return s;
}

Dataset take_first(const Dataset& d, std::size_t n) {
  if (n == 0 || n >= d.size()) return d;
  Dataset out = d;
  out.labels.resize(n);
  out.images.resize(n * d.image_bytes());
  return out;
}

ChannelStats channel_stats(const Dataset& d, std::size_t max_images) {
  ChannelStats s;
  const std::size_t n = std::min(d.size(), max_images);
  const std::size_t plane = static_cast<std::size_t>(d.height) * d.width;
  for (int c = 0; c < d.channels; ++c) {
    double sum = 0, sq = 0;
    for (std::size_t i = 0; i < n; ++i) {
      const std::uint8_t* p = d.image(i) + static_cast<std::size_t>(c) * plane;
      for (std::size_t j = 0; j < plane; ++j) {
        const double v = p[j] / 255.0;
        sum += v;
        sq += v * v;
      }
    }
    const double cnt = std::max<double>(1.0, static_cast<double>(n * plane));
    const double mean = sum / cnt;
    const double var = std::max(0.0, sq / cnt - mean * mean);
    s.mean.push_back(static_cast<float>(mean));
    s.stddev.push_back(static_cast<float>(std::max(1e-3, std::sqrt(var))));
  }
  return s;
}

}  // namespace gradzip::trainer
