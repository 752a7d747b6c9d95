// Torch-free trainer pieces: IDX/CIFAR readers, record files, augmentation, loader.
#include <gtest/gtest.h>
#include <zlib.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <set>

#include "trainer/augment.h"
#include "trainer/dataset.h"
#include "trainer/errors.h"
#include "trainer/loader.h"
#include "trainer/records.h"

namespace gz = gradzip::trainer;
namespace fs = std::filesystem;

namespace {

fs::path temp_dir(const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("gradzip_trainer_test_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(p);
  fs::create_directories(p);
  return p;
}

void write_file(const fs::path& p, const std::vector<std::uint8_t>& bytes) {
  std::ofstream f(p, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

void write_gzip(const fs::path& p, const std::vector<std::uint8_t>& bytes) {
  gzFile f = gzopen(p.c_str(), "wb");
  ASSERT_NE(f, nullptr);
  ASSERT_EQ(gzwrite(f, bytes.data(), static_cast<unsigned>(bytes.size())), static_cast<int>(bytes.size()));
  gzclose(f);
}

void put_be32(std::vector<std::uint8_t>* v, std::uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v->push_back(static_cast<std::uint8_t>(x >> s));
}

std::vector<std::uint8_t> idx_images(std::uint32_t n, std::uint32_t h, std::uint32_t w) {
  std::vector<std::uint8_t> v = {0, 0, 0x08, 3};
  put_be32(&v, n);
  put_be32(&v, h);
  put_be32(&v, w);
  for (std::uint32_t i = 0; i < n * h * w; ++i) v.push_back(static_cast<std::uint8_t>(i * 7 + 3));
  return v;
}

std::vector<std::uint8_t> idx_labels(std::uint32_t n) {
  std::vector<std::uint8_t> v = {0, 0, 0x08, 1};
  put_be32(&v, n);
  for (std::uint32_t i = 0; i < n; ++i) v.push_back(static_cast<std::uint8_t>(i % 10));
  return v;
}

}  // namespace

TEST(IdxReader, ReadsPlainAndGzipIdentically) {
  const fs::path d = temp_dir("idx");
  write_file(d / "img", idx_images(5, 3, 4));
  write_gzip(d / "img.gz", idx_images(5, 3, 4));
  write_file(d / "lab", idx_labels(5));
  const gz::Dataset a = gz::read_idx_dataset((d / "img").string(), (d / "lab").string());
  const gz::Dataset b = gz::read_idx_dataset((d / "img.gz").string(), (d / "lab").string());
  ASSERT_EQ(a.size(), 5u);
  EXPECT_EQ(a.height, 3);
  EXPECT_EQ(a.width, 4);
  EXPECT_EQ(a.images, b.images);
  EXPECT_EQ(a.labels[3], 3);
  EXPECT_EQ(a.image(1)[0], static_cast<std::uint8_t>(12 * 7 + 3));  // image 1 starts at pixel 12
  fs::remove_all(d);
}

TEST(IdxReader, CorruptFilesGiveTypedErrorsNamingTheFile) {
  const fs::path d = temp_dir("idxbad");
  auto truncated = idx_images(5, 3, 4);
  truncated.resize(truncated.size() - 1);
  write_file(d / "trunc", truncated);
  auto magic = idx_images(1, 2, 2);
  magic[0] = 1;
  write_file(d / "magic", magic);
  auto type = idx_images(1, 2, 2);
  type[2] = 0x0D;  // float data: unsupported
  write_file(d / "type", type);
  write_file(d / "lab4", idx_labels(4));
  write_file(d / "img5", idx_images(5, 3, 4));
  auto badlab = idx_labels(5);
  badlab.back() = 42;
  write_file(d / "badlab", badlab);
  auto gzbytes = std::vector<std::uint8_t>{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xff, 0xff, 0x00};
  write_file(d / "broken.gz", gzbytes);
  auto expect_error = [&](const std::string& file, const std::string& what, auto fn) {
    try {
      fn();
      ADD_FAILURE() << "no error for " << file;
    } catch (const gz::DataError& e) {
      EXPECT_NE(std::string(e.what()).find(file), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
    }
  };
  expect_error("trunc", "truncated", [&] { gz::read_idx((d / "trunc").string()); });
  expect_error("magic", "magic", [&] { gz::read_idx((d / "magic").string()); });
  expect_error("type", "element type", [&] { gz::read_idx((d / "type").string()); });
  expect_error("lab4", "4 labels", [&] { gz::read_idx_dataset((d / "img5").string(), (d / "lab4").string()); });
  expect_error("badlab", "label 42", [&] { gz::read_idx_dataset((d / "img5").string(), (d / "badlab").string()); });
  expect_error("broken.gz", "", [&] { gz::read_idx((d / "broken.gz").string()); });
  expect_error("missing", "cannot open", [&] { gz::read_idx((d / "missing").string()); });
  fs::remove_all(d);
}

TEST(CifarReader, ReadsCifar10And100RecordsAndRejectsBadSizes) {
  const fs::path d = temp_dir("cifar");
  std::vector<std::uint8_t> c10, c100;
  for (int r = 0; r < 3; ++r) {
    c10.push_back(static_cast<std::uint8_t>(r + 1));
    c100.push_back(static_cast<std::uint8_t>(r));       // coarse
    c100.push_back(static_cast<std::uint8_t>(90 + r));  // fine
    for (int p = 0; p < 3072; ++p) {
      c10.push_back(static_cast<std::uint8_t>(p + r));
      c100.push_back(static_cast<std::uint8_t>(p + r));
    }
  }
  write_file(d / "c10.bin", c10);
  write_file(d / "c100.bin", c100);
  const gz::Dataset a = gz::read_cifar_binary({(d / "c10.bin").string()}, 10);
  ASSERT_EQ(a.size(), 3u);
  EXPECT_EQ(a.labels, (std::vector<std::int32_t>{1, 2, 3}));
  EXPECT_EQ(a.image(2)[0], 2);
  EXPECT_EQ(a.image(2)[1024], static_cast<std::uint8_t>(1024 + 2));  // green plane
  const gz::Dataset b = gz::read_cifar_binary({(d / "c100.bin").string()}, 100);
  EXPECT_EQ(b.labels, (std::vector<std::int32_t>{90, 91, 92}));
  c10.pop_back();
  write_file(d / "short.bin", c10);
  EXPECT_THROW(gz::read_cifar_binary({(d / "short.bin").string()}, 10), gz::DataError);
  // A CIFAR-100 file read as CIFAR-10 has the wrong record size.
  EXPECT_THROW(gz::read_cifar_binary({(d / "c100.bin").string()}, 10), gz::DataError);
  fs::remove_all(d);
}

TEST(Records, PackReadRoundTripAndChecksumFailure) {
  const fs::path d = temp_dir("rec");
  gz::SyntheticOptions so;
  so.channels = 3;
  so.height = 9;
  so.width = 7;
  so.train_size = 301;
  so.test_size = 2;
  const gz::Dataset ds = gz::make_synthetic(so).train;
  // Shards of ~20 records each: several files.
  const auto paths = gz::pack_records(ds, d.string(), "train", 20 * (16 + ds.image_bytes()));
  ASSERT_GT(paths.size(), 10u);
  EXPECT_EQ(gz::list_record_shards(d.string(), "train"), paths);
  const gz::Dataset back = gz::read_records(paths);
  EXPECT_EQ(back.images, ds.images);
  EXPECT_EQ(back.labels, ds.labels);
  EXPECT_EQ(back.channels, 3);
  EXPECT_EQ(back.height, 9);
  // Flip one pixel byte in the middle of shard 3: the reader names the shard and record.
  {
    std::fstream f(paths[3], std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(32 + 2 * (16 + static_cast<std::streamoff>(ds.image_bytes())) + 8 + 5);
    char c = 0;
    f.read(&c, 1);
    f.seekp(-1, std::ios::cur);
    c = static_cast<char>(c ^ 0x40);
    f.write(&c, 1);
  }
  try {
    gz::read_records(paths);
    ADD_FAILURE() << "corruption not detected";
  } catch (const gz::DataError& e) {
    EXPECT_EQ(e.path(), paths[3]);
    EXPECT_NE(std::string(e.what()).find("record 2 checksum mismatch"), std::string::npos) << e.what();
  }
  fs::resize_file(paths[5], fs::file_size(paths[5]) - 3);
  EXPECT_THROW(gz::read_records({paths[5]}), gz::DataError);
  fs::remove_all(d);
}

TEST(Augment, FlipIsAnInvolutionAndMirrorsRows) {
  std::vector<float> img(2 * 3 * 5);
  std::iota(img.begin(), img.end(), 0.f);
  std::vector<float> f = img;
  gz::horizontal_flip(f.data(), 2, 3, 5);
  EXPECT_EQ(f[0], img[4]);
  EXPECT_EQ(f[5 + 1], img[5 + 3]);
  gz::horizontal_flip(f.data(), 2, 3, 5);
  EXPECT_EQ(f, img);
}

TEST(Augment, PadCropStaysInBoundsAndShiftsContent) {
  std::mt19937_64 rng(3);
  const int h = 11, w = 13, pad = 4;
  std::vector<float> img(static_cast<std::size_t>(h) * w, 1.f), out(img.size());
  for (int t = 0; t < 500; ++t) {
    const gz::CropBox b = gz::random_pad_crop_box(h, w, pad, rng);
    ASSERT_GE(b.x, 0);
    ASSERT_GE(b.y, 0);
    ASSERT_LE(b.x + b.w, w + 2 * pad);
    ASSERT_LE(b.y + b.h, h + 2 * pad);
    gz::pad_crop(img.data(), out.data(), 1, h, w, pad, b);
    // Exactly the overlap of the crop with the original image is 1, the rest zero padding.
    const double ones = std::accumulate(out.begin(), out.end(), 0.0);
    EXPECT_EQ(ones, static_cast<double>((w - std::abs(b.x - pad)) * (h - std::abs(b.y - pad))));
  }
  for (int t = 0; t < 500; ++t) {
    const gz::CropBox b = gz::random_resized_crop_box(h, w, 0.1f, rng);
    ASSERT_GE(b.x, 0);
    ASSERT_GE(b.y, 0);
    ASSERT_GE(b.w, 1);
    ASSERT_LE(b.x + b.w, w);
    ASSERT_LE(b.y + b.h, h);
  }
  // Resizing the full box is the identity.
  std::vector<float> ramp(static_cast<std::size_t>(h) * w);
  std::iota(ramp.begin(), ramp.end(), 0.f);
  gz::resized_crop(ramp.data(), out.data(), 1, h, w, gz::CropBox{0, 0, w, h});
  for (std::size_t i = 0; i < ramp.size(); ++i) EXPECT_NEAR(out[i], ramp[i], 1e-4);
}

TEST(Augment, PcaOfCorrelatedColoursAndJitterShape) {
  gz::Dataset d;
  d.channels = 3;
  d.height = d.width = 4;
  d.classes = 2;
  std::mt19937_64 rng(5);
  for (int i = 0; i < 50; ++i) {
    for (int p = 0; p < 16; ++p) {
      const int g = static_cast<int>(rng() % 200);  // all channels move together: one component
      d.images.push_back(static_cast<std::uint8_t>(g));
    }
    for (int c = 1; c < 3; ++c)
      for (int p = 0; p < 16; ++p) d.images.push_back(d.images[d.images.size() - 16]);
    d.labels.push_back(0);
  }
  const gz::RgbPca pca = gz::compute_rgb_pca(d);
  EXPECT_GT(pca.values[0], 100 * (pca.values[1] + 1e-9));
  for (int c = 0; c < 3; ++c) EXPECT_NEAR(std::abs(pca.vectors[0][c]), 1 / std::sqrt(3.f), 1e-3);
  // Jitter adds one RGB offset to every pixel: per-pixel differences are unchanged.
  std::vector<float> img(3 * 16), orig;
  std::iota(img.begin(), img.end(), 0.f);
  orig = img;
  gz::pca_color_jitter(img.data(), 4, 4, pca, 0.5f, rng);
  for (int c = 0; c < 3; ++c)
    for (int p = 1; p < 16; ++p) EXPECT_NEAR(img[c * 16 + p] - img[c * 16], orig[c * 16 + p] - orig[c * 16], 1e-4);
}

TEST(Loader, ShardsAreDisjointCoverTheDataAndReshuffleEachEpoch) {
  gz::SyntheticOptions so;
  so.channels = 1;
  so.height = so.width = 4;
  so.train_size = 103;
  const gz::Dataset ds = gz::make_synthetic(so).train;
  const gz::ChannelStats norm = gz::channel_stats(ds);
  for (int epoch = 0; epoch < 2; ++epoch) {
    std::multiset<std::size_t> all;
    for (std::uint32_t w = 0; w < 3; ++w) {
      gz::LoaderOptions lo;
      lo.workers = 3;
      lo.worker = w;
      gz::Loader l(ds, norm, nullptr, lo);
      for (auto i : l.shard_indices(epoch)) all.insert(i);
    }
    EXPECT_EQ(all.size(), ds.size());
    EXPECT_EQ(std::set<std::size_t>(all.begin(), all.end()).size(), ds.size());
  }
  gz::LoaderOptions lo;
  gz::Loader l(ds, norm, nullptr, lo);
  EXPECT_NE(l.shard_indices(0), l.shard_indices(1));
}

TEST(Loader, BatchesAreIdenticalWhateverTheThreadCount) {
  gz::SyntheticOptions so;
  so.train_size = 200;
  const gz::Dataset ds = gz::make_synthetic(so).train;
  const gz::ChannelStats norm = gz::channel_stats(ds);
  const gz::RgbPca pca = gz::compute_rgb_pca(ds);
  auto run = [&](int threads) {
    gz::LoaderOptions lo;
    lo.batch_size = 32;
    lo.threads = threads;
    lo.prefetch = 3;
    lo.seed = 9;
    lo.augment.crop_padding = 4;
    lo.augment.horizontal_flip = true;
    lo.augment.random_resized_crop = true;
    lo.augment.brightness = 0.1f;
    lo.augment.contrast = 0.1f;
    lo.augment.pca_jitter = 0.1f;
    gz::Loader l(ds, norm, &pca, lo);
    std::vector<float> all;
    std::size_t n = 0;
    l.start_epoch(1);
    gz::Batch b;
    while (l.next(&b)) {
      EXPECT_EQ(b.images.size(), b.size * ds.image_bytes());
      all.insert(all.end(), b.images.begin(), b.images.end());
      n += b.size;
    }
    EXPECT_EQ(n, ds.size());
    EXPECT_EQ(l.batches_per_epoch(), 7u);
    return all;
  };
  const auto one = run(1);
  EXPECT_EQ(one, run(3));
}
