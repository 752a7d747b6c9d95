// The table of fuzz targets and the seed corpora: real messages of every registered
// codec, the golden wire vectors, protocol envelopes and a handshake, the shipped
// configs, and the first Fashion-MNIST test images written as IDX, CIFAR and record files.
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "comm/layout.h"
#include "comm/protocol.h"
#include "quant/registry.h"
#include "tests/fuzz/harness.h"
#include "tests/fuzz/util.h"
#include "trainer/dataset.h"
#include "trainer/records.h"

namespace gradzip::fuzz {

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {
      {"codec", codec}, {"protocol", protocol}, {"config", config},
      {"idx", idx},             {"cifar", cifar},       {"records", records},
  };
  return all;
}

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<std::uint8_t>;

Bytes cat(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes text_bytes(const std::string& s) { return Bytes(s.begin(), s.end()); }

void put_be32(Bytes* out, std::uint32_t v) {
  for (int shift = 24; shift >= 0; shift -= 8) out->push_back(static_cast<std::uint8_t>(v >> shift));
}

Bytes le32(std::uint32_t v) {
  Bytes b(4);
  std::memcpy(b.data(), &v, 4);
  return b;
}

/// A gzip stream (RFC 1952) of `in`, as the IDX reader accepts for "*.gz" files.
Bytes gzip(const Bytes& in) {
  z_stream z{};
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) throw std::runtime_error("deflateInit2");
  Bytes out(deflateBound(&z, static_cast<uLong>(in.size())) + 32);
  z.next_in = const_cast<Bytes::value_type*>(in.data());
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = out.data();
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) throw std::runtime_error("deflate did not finish");
  return out;
}

/// Smooth values over several magnitudes, both signs and a zero (like the golden input).
std::vector<float> gradient(std::size_t n) {
  std::vector<float> x(n);
  for (std::size_t i = 0; i < n; ++i) {
    const int k = static_cast<int>((i * 73) % 41) - 20;
    x[i] = static_cast<float>(k) * 0.125f / static_cast<float>(1u << (i % 5));
  }
  if (n > 3) x[3] = 0.0f;
  return x;
}

void codec_seeds(const std::string& source_dir, const std::string& dir) {
  const quant::SeedContext ctx{0x0123456789ABCDEFull, 42, 3, 5};
  for (const quant::CodecEntry* entry : quant::codec_entries()) {
    const auto codec = quant::make_codec(entry->name, {});
    for (const std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{37}, std::size_t{300}}) {
      const std::vector<float> g = gradient(n);
      write_file(dir + "/" + entry->name + "-n" + std::to_string(n), cat({0}, codec->encode(g.data(), n, ctx)));
    }
  }
  // The golden vectors (tests/quant/golden/*.hex): one per codec variant the wire pins.
  for (const auto& f : fs::directory_iterator(source_dir + "/tests/quant/golden")) {
    if (f.path().extension() != ".hex") continue;
    std::ifstream in(f.path());
    std::string line, hex;
    while (std::getline(in, line)) {
      if (!line.empty() && line[0] != '#') hex += line;
    }
    Bytes msg{0};
    for (std::size_t i = 0; i + 1 < hex.size(); i += 2) {
      msg.push_back(static_cast<std::uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
    }
    write_file(dir + "/golden-" + f.path().stem().string(), msg);
  }
  // One message handed over as it is (control bit 0 set): reaches parse_message's checks.
  const auto identity = quant::make_codec("identity");
  const std::vector<float> g = gradient(5);
  write_file(dir + "/identity-raw", cat({1}, identity->encode(g.data(), g.size(), ctx)));
}

void protocol_seeds(const std::string& dir) {
  using comm::MsgType;
  const MsgType types[] = {MsgType::kHello,     MsgType::kInit,     MsgType::kPush,  MsgType::kPull,
                           MsgType::kBarrier,   MsgType::kHeartbeat, MsgType::kShutdown, MsgType::kReduce};
  for (const MsgType t : types) {
    for (const bool reply : {false, true}) {
      comm::Envelope e;
      e.type = static_cast<MsgType>(static_cast<std::uint8_t>(t) | (reply ? comm::kReplyBit : 0));
      e.worker = 3;
      e.bucket = t == MsgType::kPush ? 7 : 0;
      e.step = 1234;
      e.seq = 99;
      e.aux = reply ? 1234 : 0;
      e.flags = reply && t == MsgType::kPush ? comm::kFlagDuplicate : 0;
      Bytes env(comm::kEnvelopeBytes);
      comm::write_envelope(e, env.data());
      write_file(dir + "/envelope-" + std::to_string(static_cast<int>(e.type)), env);
    }
  }
  comm::Envelope error;
  error.type = MsgType::kError;
  error.bucket = static_cast<std::uint32_t>(comm::ProtoErr::kWrongStep);
  Bytes env(comm::kEnvelopeBytes);
  comm::write_envelope(error, env.data());
  write_file(dir + "/envelope-error", cat(env, text_bytes("step 5 outside the window")));

  comm::ModelSignature sig;
  sig.tensors = {{"conv1.weight", {8, 1, 3, 3}, 72}, {"fc.bias", {10}, 10}};
  sig.compressor_spec = "ef+qsgd:bits=4,bucket=512";
  sig.downlink_spec = "dense";
  comm::PlacementOptions placement;
  placement.num_shards = 2;
  sig.placement = placement.canonical();
  comm::Envelope hello;
  hello.type = MsgType::kHello;
  comm::write_envelope(hello, env.data());
  write_file(dir + "/hello", cat(env, text_bytes(comm::signature_to_json(sig))));
}

void config_seeds(const std::string& source_dir, const std::string& dir) {
  for (const auto& f : fs::directory_iterator(source_dir + "/experiments/configs")) {
    if (f.path().extension() == ".ini") write_file(dir + "/" + f.path().filename().string(), read_file(f.path()));
  }
  write_file(dir + "/sections.ini",
             text_bytes("; keys before a section apply\nseed = 7\n[common]\nworkers = 3\n[ps]\nport = 1\n"
                        "[train]\nmode = ssp\nslack = 2\n# comment\nlr-schedule = step\nlr-milestones = 30,60\n"
                        "offset = -12\nnesterov = yes\n"));
}

/// The first `n` images of the Fashion-MNIST test set (synthetic images without it).
trainer::Dataset sample_images(const std::string& fashion_mnist_dir, std::size_t n) {
  if (fs::exists(fashion_mnist_dir + "/t10k-images-idx3-ubyte.gz")) {
    return trainer::take_first(trainer::read_idx_dataset(fashion_mnist_dir + "/t10k-images-idx3-ubyte.gz",
                                                         fashion_mnist_dir + "/t10k-labels-idx1-ubyte.gz"),
                               n);
  }
  trainer::SyntheticOptions o;
  o.channels = 1;
  o.height = o.width = 28;
  o.train_size = n;
  o.test_size = 0;
  return trainer::make_synthetic(o).train;
}

void idx_seeds(const trainer::Dataset& d, const std::string& dir) {
  Bytes images{0, 0, 8, 3}, labels{0, 0, 8, 1};
  put_be32(&images, static_cast<std::uint32_t>(d.size()));
  put_be32(&images, static_cast<std::uint32_t>(d.height));
  put_be32(&images, static_cast<std::uint32_t>(d.width));
  images.insert(images.end(), d.images.begin(), d.images.end());
  put_be32(&labels, static_cast<std::uint32_t>(d.size()));
  for (const std::int32_t l : d.labels) labels.push_back(static_cast<std::uint8_t>(l));
  const auto pair = [](const Bytes& a, const Bytes& b) { return cat(cat(le32(static_cast<std::uint32_t>(a.size())), a), b); };
  write_file(dir + "/fashion-mnist", pair(images, labels));
  write_file(dir + "/fashion-mnist-gz", pair(gzip(images), gzip(labels)));
  Bytes rank4{0, 0, 8, 4};
  for (std::uint32_t dim : {1u, 2u, 2u, 3u}) put_be32(&rank4, dim);
  rank4.resize(rank4.size() + 12, 7);
  write_file(dir + "/rank4", pair(rank4, labels));
}

void cifar_seeds(const trainer::Dataset& d, const std::string& dir) {
  // CIFAR records (3 x 32 x 32) from the 28 x 28 images: centred, copied to 3 channels.
  for (const bool hundred : {false, true}) {
    Bytes file{static_cast<std::uint8_t>(hundred ? 1 : 0)};
    for (std::size_t i = 0; i < d.size(); ++i) {
      if (hundred) file.push_back(static_cast<std::uint8_t>(d.labels[i] / 2));  // coarse label
      file.push_back(static_cast<std::uint8_t>(d.labels[i]));
      for (int c = 0; c < 3; ++c) {
        for (int y = 0; y < 32; ++y) {
          for (int x = 0; x < 32; ++x) {
            const bool inside = y >= 2 && y < 30 && x >= 2 && x < 30;
            file.push_back(inside ? d.image(i)[(y - 2) * 28 + (x - 2)] : std::uint8_t{0});
          }
        }
      }
    }
    write_file(dir + (hundred ? "/cifar100" : "/cifar10"), file);
  }
}

void record_seeds(const trainer::Dataset& d, const std::string& dir) {
  const fs::path tmp = fs::temp_directory_path() / ("gradzip-fuzz-seeds-" + std::to_string(::getpid()));
  const auto shards = trainer::pack_records(d, tmp.string(), "seed");
  write_file(dir + "/fashion-mnist", read_file(shards.front()));
  std::error_code ec;
  fs::remove_all(tmp, ec);
}

}  // namespace

void write_seeds(const std::string& source_dir, const std::string& fashion_mnist_dir, const std::string& out_dir) {
  codec_seeds(source_dir, out_dir + "/codec");
  protocol_seeds(out_dir + "/protocol");
  config_seeds(source_dir, out_dir + "/config");
  const trainer::Dataset images = sample_images(fashion_mnist_dir, 2);
  idx_seeds(images, out_dir + "/idx");
  cifar_seeds(images, out_dir + "/cifar");
  record_seeds(images, out_dir + "/records");
}

}  // namespace gradzip::fuzz
