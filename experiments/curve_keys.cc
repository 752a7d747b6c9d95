// CURVE key directory (see curve_keys.h).
#include "experiments/curve_keys.h"

#include <filesystem>
#include <fstream>

#include "comm/zmq_server.h"

namespace gradzip::experiments {
namespace fs = std::filesystem;
namespace {

fs::path worker_file(const fs::path& dir, std::uint32_t rank) {
  return dir / ("worker" + std::to_string(rank) + ".key");
}

void require_file(const fs::path& p) {
  std::error_code ec;
  if (!fs::is_regular_file(p, ec)) {
    throw CurveKeyError("CURVE key file " + p.string() + " is missing (written by 'gradzip keys --out " +
                        p.parent_path().string() + "')");
  }
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::trunc);
  f << text;
  f.flush();
  if (!f) throw CurveKeyError("cannot write " + p.string());
}

}  // namespace

std::string curve_key_dir(const std::string& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw CurveKeyError("--curve-keys " + dir + ": not a directory (create one with 'gradzip keys --out " + dir + "')");
  }
  return fs::absolute(dir).lexically_normal().string();
}

std::vector<std::string> write_curve_key_dir(const std::string& dir, std::uint32_t workers, bool overwrite) {
  const fs::path d(dir);
  std::error_code ec;
  fs::create_directories(d, ec);
  if (ec) throw CurveKeyError("cannot create " + dir + ": " + ec.message());
  std::vector<fs::path> files = {d / "server.key", d / "server.pub", d / "authorized_keys"};
  for (std::uint32_t w = 0; w < workers; ++w) files.push_back(worker_file(d, w));
  if (!overwrite) {
    for (const auto& f : files) {
      if (fs::exists(f, ec)) throw CurveKeyError(f.string() + " exists; pass --force to replace the keys in " + dir);
    }
  }
  std::vector<std::string> written;
  try {
    write_text(d / "server.pub", comm::generate_curve_keypair((d / "server.key").string()) + "\n");
    written = {(d / "server.key").string(), (d / "server.pub").string()};
    std::string authorized;
    for (std::uint32_t w = 0; w < workers; ++w) {
      authorized += comm::generate_curve_keypair(worker_file(d, w).string()) + "\n";
      written.push_back(worker_file(d, w).string());
    }
    write_text(d / "authorized_keys", authorized);
    written.push_back((d / "authorized_keys").string());
  } catch (const std::runtime_error& e) {
    throw CurveKeyError(e.what());
  }
  return written;
}

ShardCurveFiles shard_curve_files(const std::string& dir) {
  const fs::path d(dir);
  ShardCurveFiles f{(d / "server.key").string(), (d / "authorized_keys").string()};
  require_file(f.key_pair);
  require_file(f.authorized_keys);
  return f;
}

WorkerCurveKeys worker_curve_keys(const std::string& dir, std::uint32_t rank) {
  const fs::path d(dir);
  require_file(d / "server.pub");
  WorkerCurveKeys k;
  std::ifstream in(d / "server.pub");
  if (!(in >> k.server_public_key) || k.server_public_key.size() != 40) {
    throw CurveKeyError((d / "server.pub").string() + ": expected one 40-character Z85 public key");
  }
  k.key_pair = worker_file(d, rank).string();
  require_file(k.key_pair);
  return k;
}

}  // namespace gradzip::experiments
